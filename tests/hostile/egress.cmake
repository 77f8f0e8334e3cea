# Area "egress" (issue 14): isolated bridge ports (net/isolate.c) attacked by
# their guests: each other, the host's services, the allow-list, spoofed
# MACs and addresses; the ruleset is back as it was after removal.
qvm_test(NAME hostile_isolation_bridge SOURCES ${CMAKE_CURRENT_SOURCE_DIR}/isolation_bridge.c
         LIBS qvm_net_testlib qvm_net PkgConfig::NFTABLES LABELS hostile integration TIMEOUT 300)
target_include_directories(hostile_isolation_bridge PRIVATE ${PROJECT_SOURCE_DIR}/tests/net)

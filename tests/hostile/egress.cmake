# Area "egress" (issue 14): isolated bridge ports (net/isolate.c) attacked by
# their guests: each other, the host's services, the allow-list, spoofed
# MACs and addresses; the ruleset is back as it was after removal.
qvm_test(NAME hostile_isolation_bridge SOURCES ${CMAKE_CURRENT_SOURCE_DIR}/isolation_bridge.c
         LIBS qvm_net_testlib qvm_net PkgConfig::NFTABLES LABELS hostile integration TIMEOUT 300)
target_include_directories(hostile_isolation_bridge PRIVATE ${PROJECT_SOURCE_DIR}/tests/net)
# The same with the mini guest and the real qvm binary: two sandboxes with
# --net isolated-bridge, the host's SSH, the allow-list, a spoofing guest,
# bad --allow-egress entries, a corrupt vm.json, nothing left after destroy.
add_executable(qvm_test_nft_ruleset ${CMAKE_CURRENT_SOURCE_DIR}/nft_ruleset.c)
target_link_libraries(qvm_test_nft_ruleset PRIVATE PkgConfig::NFTABLES)
add_test(NAME hostile_isolation_sandbox_bridge
         COMMAND ${CMAKE_CURRENT_SOURCE_DIR}/isolation_sandbox_bridge.sh)
set_tests_properties(hostile_isolation_sandbox_bridge PROPERTIES
  LABELS "hostile;integration" TIMEOUT 900 SKIP_RETURN_CODE 77 FIXTURES_REQUIRED mini_guest
  ENVIRONMENT "QVM_SOURCE_DIR=${PROJECT_SOURCE_DIR};QVM_BINARY_DIR=${PROJECT_BINARY_DIR};QVM_TEST_NFT=$<TARGET_FILE:qvm_test_nft_ruleset>")

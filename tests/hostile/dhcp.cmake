# DHCP against a hostile guest (issue 11): raw frames from a guest netns at
# qvm's DHCP server and lease watcher. See tests/hostile/dhcp_guest.c.
qvm_test(NAME hostile_dhcp_guest SOURCES ${CMAKE_CURRENT_LIST_DIR}/dhcp_guest.c
         LIBS qvm_net_testlib qvm_net LABELS hostile TIMEOUT 300)

# Area "img": disk image headers a guest (or a QEMU it took over) can write.
#   rewrite: the VM's overlay and a qcow2 --drive are rewritten between two
#            starts to name a host file (backing file, data file, json:);
#            the start is refused before QEMU runs
#   blockdev: the headers are rewritten after the check, before QEMU runs:
#            the -blockdev graph's explicit backing keeps QEMU off them
#   create:  qemu-img info at create runs as the qemu user, bounded in time,
#            after qvm's own header check (fifo/device data files, extents)
#   ptable:  the partition table create grows (--disk larger than the image):
#            hostile tables are left alone, the image is never written
qvm_test(NAME test_img_unit SOURCES img_unit.c LIBS qvm_vm LABELS unit)
foreach(t rewrite blockdev create ptable)
  add_test(NAME hostile_img_${t} COMMAND ${CMAKE_CURRENT_SOURCE_DIR}/img_${t}.sh)
  set_tests_properties(hostile_img_${t} PROPERTIES
    LABELS hostile TIMEOUT 400 SKIP_RETURN_CODE 77 FIXTURES_REQUIRED mini_guest
    ENVIRONMENT "QVM_SOURCE_DIR=${PROJECT_SOURCE_DIR};QVM_BINARY_DIR=${PROJECT_BINARY_DIR}")
endforeach()
qvm_fuzz_target(NAME fuzz_img_qcow2 SOURCES img_fuzz_qcow2.c LIBS qvm_vm
                CORPUS ${CMAKE_CURRENT_SOURCE_DIR}/img_corpus)

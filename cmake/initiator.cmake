# libiserd (the initiator library behind include/iserd/iserd.h) and the
# iserinit CLI. Included once from the top-level CMakeLists.txt.
#
# The library is the src/initiator layer plus the files of the layers below
# it that it stands on: the PDU codec, key parsing, CHAP, CRC32C, iovecs and
# strings, the reactor, the RDMA layer, and the TCP and iSER datamovers (the
# same ones the target uses, in their active role; not the iSER portals).
# They are compiled once more, position independent and with hidden
# visibility, so that the static and the shared library are
# self-contained and export nothing but iserd_*. Log lines of those layers go
# to the context's log function (ISD_LOG_LIBRARY: never to stderr).

file(GLOB _isd_init_srcs CONFIGURE_DEPENDS ${CMAKE_SOURCE_DIR}/src/initiator/*.c)
set(_isd_init_reused
	${CMAKE_SOURCE_DIR}/src/iscsi/pdu.c
	${CMAKE_SOURCE_DIR}/src/iscsi/keys.c
	${CMAKE_SOURCE_DIR}/src/iscsi/chap.c
	${CMAKE_SOURCE_DIR}/src/util/crc32c.c
	${CMAKE_SOURCE_DIR}/src/util/log.c
	${CMAKE_SOURCE_DIR}/src/util/iov.c
	${CMAKE_SOURCE_DIR}/src/util/mem.c
	${CMAKE_SOURCE_DIR}/src/util/str.c
	${CMAKE_SOURCE_DIR}/src/reactor/reactor.c
	${CMAKE_SOURCE_DIR}/src/dm/tcp/tcp_frame.c
	${CMAKE_SOURCE_DIR}/src/dm/tcp/tcp_conn.c
	${CMAKE_SOURCE_DIR}/src/dm/iser/iser_active.c
	${CMAKE_SOURCE_DIR}/src/dm/iser/iser_conn.c
	${CMAKE_SOURCE_DIR}/src/dm/iser/iser_plan.c
	${CMAKE_SOURCE_DIR}/src/dm/iser/iser_proto.c
	${CMAKE_SOURCE_DIR}/src/dm/iser/iser_rx.c
	${CMAKE_SOURCE_DIR}/src/dm/iser/iser_tx.c
	${CMAKE_SOURCE_DIR}/src/rdma/rdma_access.c
	${CMAKE_SOURCE_DIR}/src/rdma/rdma_dev.c
	${CMAKE_SOURCE_DIR}/src/rdma/rdma_pool.c
	${CMAKE_SOURCE_DIR}/src/rdma/rdma_regcache.c)

add_library(isd_initiator_obj OBJECT ${_isd_init_srcs} ${_isd_init_reused})
set_target_properties(isd_initiator_obj PROPERTIES
	POSITION_INDEPENDENT_CODE ON
	C_VISIBILITY_PRESET hidden)
target_compile_definitions(isd_initiator_obj PRIVATE ISD_LOG_LIBRARY)
target_include_directories(isd_initiator_obj PUBLIC ${CMAKE_SOURCE_DIR}/include ${CMAKE_SOURCE_DIR}/src)

set(_isd_init_deps ${ISAL_LIB} PkgConfig::CRYPTO PkgConfig::IBVERBS PkgConfig::RDMACM)
set(_isd_init_map ${CMAKE_SOURCE_DIR}/src/initiator/libiserd.map)

add_library(iserd_static STATIC $<TARGET_OBJECTS:isd_initiator_obj>)
set_target_properties(iserd_static PROPERTIES OUTPUT_NAME iserd)
# Installed, the static library's dependencies are plain -l names: the
# exported iserd::iserd_static needs no pkg-config targets of the consumer's.
foreach(_d ${_isd_init_deps})
	target_link_libraries(iserd_static PUBLIC $<BUILD_INTERFACE:${_d}>)
endforeach()
target_link_libraries(iserd_static PUBLIC $<INSTALL_INTERFACE:isal> $<INSTALL_INTERFACE:crypto>
	$<INSTALL_INTERFACE:ibverbs> $<INSTALL_INTERFACE:rdmacm>)
set_target_properties(iserd_static PROPERTIES EXPORT_NAME iserd_static)
target_include_directories(iserd_static PUBLIC
	$<BUILD_INTERFACE:${CMAKE_SOURCE_DIR}/include> $<INSTALL_INTERFACE:include>)

add_library(iserd_shared SHARED $<TARGET_OBJECTS:isd_initiator_obj>)
set_target_properties(iserd_shared PROPERTIES
	OUTPUT_NAME iserd
	VERSION ${PROJECT_VERSION}
	SOVERSION 0
	EXPORT_NAME iserd
	LINK_DEPENDS ${_isd_init_map})
target_link_options(iserd_shared PRIVATE -Wl,--version-script=${_isd_init_map})
if(NOT ISERD_SANITIZE AND NOT ISERD_FUZZ AND NOT ISERD_TSAN)
	# (clang leaves the sanitizer runtimes to the executable: no check then)
	target_link_options(iserd_shared PRIVATE -Wl,--no-undefined)
endif()
target_link_libraries(iserd_shared PRIVATE ${_isd_init_deps})
target_include_directories(iserd_shared PUBLIC
	$<BUILD_INTERFACE:${CMAKE_SOURCE_DIR}/include> $<INSTALL_INTERFACE:include>)

# The CLI links the shared library: it uses only the public API.
file(GLOB _iserinit_srcs CONFIGURE_DEPENDS ${CMAKE_SOURCE_DIR}/cli/iserinit*.c)
add_executable(iserinit ${_iserinit_srcs})
target_link_libraries(iserinit PRIVATE iserd_shared PkgConfig::JSONC m)
set_target_properties(iserinit PROPERTIES BUILD_RPATH ${CMAKE_BINARY_DIR})

install(FILES ${CMAKE_SOURCE_DIR}/include/iserd/iserd.h DESTINATION ${CMAKE_INSTALL_INCLUDEDIR}/iserd)
# The export set iserdTargets becomes the CMake package (cmake/install.cmake).
install(TARGETS iserd_static iserd_shared EXPORT iserdTargets
	ARCHIVE DESTINATION ${CMAKE_INSTALL_LIBDIR}
	LIBRARY DESTINATION ${CMAKE_INSTALL_LIBDIR}
	INCLUDES DESTINATION ${CMAKE_INSTALL_INCLUDEDIR})
install(TARGETS iserinit RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR})
install(FILES ${CMAKE_SOURCE_DIR}/docs/iserinit.1 DESTINATION ${CMAKE_INSTALL_MANDIR}/man1 OPTIONAL)
# prefix is found from the .pc file's own place (pkg-config's ${pcfiledir}),
# so that the installed tree may be moved or installed under DESTDIR and
# still be right; an absolute libdir (outside the prefix) keeps the prefix.
if(IS_ABSOLUTE "${CMAKE_INSTALL_LIBDIR}")
	set(_isd_pc_prefix "${CMAKE_INSTALL_PREFIX}")
else()
	file(RELATIVE_PATH _isd_pc_up "/p/${CMAKE_INSTALL_LIBDIR}/pkgconfig" "/p")
	string(REGEX REPLACE "/$" "" _isd_pc_up "${_isd_pc_up}")
	set(_isd_pc_prefix "\${pcfiledir}/${_isd_pc_up}")
endif()
if(IS_ABSOLUTE "${CMAKE_INSTALL_INCLUDEDIR}")
	set(_isd_pc_inc "${CMAKE_INSTALL_INCLUDEDIR}")
else()
	set(_isd_pc_inc "\${prefix}/${CMAKE_INSTALL_INCLUDEDIR}")
endif()
if(IS_ABSOLUTE "${CMAKE_INSTALL_LIBDIR}")
	set(_isd_pc_lib "${CMAKE_INSTALL_LIBDIR}")
else()
	set(_isd_pc_lib "\${prefix}/${CMAKE_INSTALL_LIBDIR}")
endif()
file(WRITE ${CMAKE_BINARY_DIR}/libiserd.pc
"prefix=${_isd_pc_prefix}
libdir=${_isd_pc_lib}
includedir=${_isd_pc_inc}

Name: libiserd
Description: iSCSI initiator library of iserd (iSCSI over TCP and iSER)
Version: ${PROJECT_VERSION}
Requires.private: libcrypto libibverbs librdmacm
Libs: -L\${libdir} -liserd
Libs.private: -lisal
Cflags: -I\${includedir}
")
install(FILES ${CMAKE_BINARY_DIR}/libiserd.pc DESTINATION ${CMAKE_INSTALL_LIBDIR}/pkgconfig)

if(ISERD_TESTS)
	# Unit tests under tests/unit/initiator and the fuzzer fuzz_init_rx are
	# created by tests/CMakeLists.txt (this file is included after it); they
	# need the library too.
	file(GLOB _isd_init_tests CONFIGURE_DEPENDS ${CMAKE_SOURCE_DIR}/tests/unit/initiator/test_*.c)
	set(_isd_init_targets fuzz_init_rx)
	foreach(_src ${_isd_init_tests})
		get_filename_component(_n ${_src} NAME_WE)
		list(APPEND _isd_init_targets unit_initiator_${_n})
	endforeach()
	foreach(_t ${_isd_init_targets})
		if(TARGET ${_t})
			target_link_libraries(${_t} PRIVATE iserd_static)
		endif()
	endforeach()
	# tests/unit/cli: the CLI's libc-only helpers, compiled in
	if(TARGET unit_cli_test_iserinit_env)
		target_sources(unit_cli_test_iserinit_env PRIVATE ${CMAKE_SOURCE_DIR}/cli/iserinit_env.c)
		target_include_directories(unit_cli_test_iserinit_env PRIVATE ${CMAKE_SOURCE_DIR}/cli)
	endif()
	add_test(NAME libiserd_exports
		COMMAND ${CMAKE_COMMAND} -DLIB=$<TARGET_FILE:iserd_shared>
			-P ${CMAKE_SOURCE_DIR}/cmake/check_exports.cmake)
	set_tests_properties(libiserd_exports PROPERTIES LABELS unit TIMEOUT 60)
endif()

# A program that drives the public API against a live target (used by
# tests/integration/test_iserinit.sh); it links the shared library only.
add_executable(iserd_api_check ${CMAKE_SOURCE_DIR}/tests/integration/iserd_api_check.c)
target_link_libraries(iserd_api_check PRIVATE iserd_shared)
set_target_properties(iserd_api_check PROPERTIES BUILD_RPATH ${CMAKE_BINARY_DIR})

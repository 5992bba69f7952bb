# What `cmake --install` puts where, beyond the targets' own rules in
# CMakeLists.txt and cmake/initiator.cmake, and the tests that check it.
# Included once from the top-level CMakeLists.txt, after initiator.cmake.
#
#   sbin/iserd, sbin/iserctl          the daemon and its control tool
#   bin/iserinit                      the initiator CLI
#   lib/<multiarch>/libiserd.so.0...  the initiator library (and .a, .so)
#   include/iserd/iserd.h             its header
#   lib/<multiarch>/pkgconfig/libiserd.pc       relative to its own place
#   lib/<multiarch>/cmake/iserd/      iserdConfig.cmake, version, targets
#   lib/systemd/system/iserd.service  (ISERD_SYSTEMD_UNITDIR)
#   share/man/man1, man8              iserinit(1), iserd(8), iserctl(8)
#   share/doc/iserd/examples/iserd.conf.example

include(CMakePackageConfigHelpers)

# Under a prefix the dynamic linker does not search, the installed programs
# find libiserd next to them ($ORIGIN); under /usr they carry no RUNPATH.
list(FIND CMAKE_PLATFORM_IMPLICIT_LINK_DIRECTORIES "${CMAKE_INSTALL_FULL_LIBDIR}" _isd_sys_lib)
if(_isd_sys_lib EQUAL -1 AND NOT IS_ABSOLUTE "${CMAKE_INSTALL_LIBDIR}")
	file(RELATIVE_PATH _isd_bin_to_lib "/p/${CMAKE_INSTALL_BINDIR}" "/p/${CMAKE_INSTALL_LIBDIR}")
	set(ISERD_INSTALL_RPATH "$ORIGIN/${_isd_bin_to_lib}")
	set_target_properties(iserinit PROPERTIES INSTALL_RPATH "${ISERD_INSTALL_RPATH}")
endif()

# The unit file: ExecStart names the installed daemon, the config is
# SYSCONFDIR/iserd/iserd.conf (/etc/iserd/iserd.conf under /usr).
# (relative: under the prefix, which systemd searches for /usr and /usr/local)
set(ISERD_SYSTEMD_UNITDIR "lib/systemd/system" CACHE STRING
	"Where `cmake --install` puts iserd.service (Debian 12's packages: /lib/systemd/system)")
set(SBINDIR "${CMAKE_INSTALL_FULL_SBINDIR}")
# (GNUInstallDirs: /etc for the prefixes / and /usr, PREFIX/etc otherwise)
set(SYSCONFDIR "${CMAKE_INSTALL_FULL_SYSCONFDIR}")
configure_file(${CMAKE_SOURCE_DIR}/packaging/iserd.service.in
	${CMAKE_BINARY_DIR}/iserd.service @ONLY)
install(FILES ${CMAKE_BINARY_DIR}/iserd.service DESTINATION ${ISERD_SYSTEMD_UNITDIR})
install(FILES ${CMAKE_SOURCE_DIR}/docs/iserd.conf.example
	DESTINATION ${CMAKE_INSTALL_DOCDIR}/examples)

# iserctl is defined elsewhere (cli/), perhaps after this file: decide at the
# end of the top-level directory.
function(_isd_install_iserctl)
	if(TARGET iserctl)
		install(TARGETS iserctl RUNTIME DESTINATION ${CMAKE_INSTALL_SBINDIR})
		if(ISERD_INSTALL_RPATH)
			file(RELATIVE_PATH _up "/p/${CMAKE_INSTALL_SBINDIR}" "/p/${CMAKE_INSTALL_LIBDIR}")
			set_target_properties(iserctl PROPERTIES INSTALL_RPATH "$ORIGIN/${_up}")
		endif()
	endif()
	install(FILES ${CMAKE_SOURCE_DIR}/docs/iserctl.8 DESTINATION ${CMAKE_INSTALL_MANDIR}/man8)
endfunction()
cmake_language(DEFER CALL _isd_install_iserctl)

# The CMake package: find_package(iserd) gives iserd::iserd (shared) and
# iserd::iserd_static, with the include directory attached.
set(ISERD_CMAKEDIR ${CMAKE_INSTALL_LIBDIR}/cmake/iserd)
install(EXPORT iserdTargets NAMESPACE iserd:: DESTINATION ${ISERD_CMAKEDIR}
	FILE iserdTargets.cmake)
configure_package_config_file(${CMAKE_SOURCE_DIR}/cmake/iserdConfig.cmake.in
	${CMAKE_BINARY_DIR}/iserdConfig.cmake INSTALL_DESTINATION ${ISERD_CMAKEDIR}
	PATH_VARS CMAKE_INSTALL_INCLUDEDIR)
# 0.x: a minor version may break the API, so only the same minor matches
write_basic_package_version_file(${CMAKE_BINARY_DIR}/iserdConfigVersion.cmake
	VERSION ${PROJECT_VERSION} COMPATIBILITY SameMinorVersion)
install(FILES ${CMAKE_BINARY_DIR}/iserdConfig.cmake ${CMAKE_BINARY_DIR}/iserdConfigVersion.cmake
	DESTINATION ${ISERD_CMAKEDIR})

if(ISERD_TESTS)
	# systemd-analyze verify needs ExecStart's binary to exist: this copy
	# names the one just built.
	set(SBINDIR "${CMAKE_BINARY_DIR}")
	configure_file(${CMAKE_SOURCE_DIR}/packaging/iserd.service.in
		${CMAKE_BINARY_DIR}/tests/systemd/iserd.service @ONLY)
	add_test(NAME install_systemd_verify
		COMMAND bash ${CMAKE_SOURCE_DIR}/tests/install/test_systemd_verify.sh
			${CMAKE_BINARY_DIR}/tests/systemd/iserd.service)
	set_tests_properties(install_systemd_verify PROPERTIES LABELS "unit;install"
		SKIP_RETURN_CODE 77 TIMEOUT 120)
	# install to a temporary prefix, build programs against it with
	# pkg-config and with find_package(iserd), run them
	add_test(NAME install_consumers
		COMMAND bash ${CMAKE_SOURCE_DIR}/tests/install/test_install.sh)
	set(_isd_install_env ISERD_SRC=${CMAKE_SOURCE_DIR} ISERD_BUILD=${CMAKE_BINARY_DIR}
		ISERD_SANITIZE=${ISERD_SANITIZE} CC=${CMAKE_C_COMPILER})
	set_tests_properties(install_consumers PROPERTIES LABELS install SKIP_RETURN_CODE 77
		TIMEOUT 600 ENVIRONMENT "${_isd_install_env}")
	# dpkg-buildpackage -b of debian/ on a copy of the tree, dpkg -c, lintian
	add_test(NAME package_debian COMMAND bash ${CMAKE_SOURCE_DIR}/tests/install/test_debian.sh)
	set_tests_properties(package_debian PROPERTIES LABELS package SKIP_RETURN_CODE 77
		TIMEOUT 1800 RUN_SERIAL TRUE ENVIRONMENT "ISERD_SRC=${CMAKE_SOURCE_DIR}")
endif()

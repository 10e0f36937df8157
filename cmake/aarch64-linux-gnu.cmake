# Cross-compiling skep for arm64 (Raspberry Pi OS 64-bit, Graviton) with Debian's
# g++-aarch64-linux-gnu against an arm64 sysroot that deploy/sysroot.sh makes:
#   cmake -G Ninja -B build-arm64 -DCMAKE_TOOLCHAIN_FILE=cmake/aarch64-linux-gnu.cmake \
#         -DSKEP_SYSROOT=/var/cache/skep/sysroot-arm64 -DSKEP_THREAD_SAFETY=OFF
# Headers, libraries and CMake packages come only from the sysroot; programs run at build time
# (protoc, grpc_cpp_plugin, ccache) are the host's. The test programs are arm64: Catch2 lists
# their tests by running them, and ctest runs them, under qemu-aarch64-static.
set(CMAKE_SYSTEM_NAME Linux)
set(CMAKE_SYSTEM_PROCESSOR aarch64)
set(CMAKE_C_COMPILER aarch64-linux-gnu-gcc)
set(CMAKE_CXX_COMPILER aarch64-linux-gnu-g++)
set(CMAKE_LIBRARY_ARCHITECTURE aarch64-linux-gnu)

set(SKEP_SYSROOT "/var/cache/skep/sysroot-arm64" CACHE PATH "the arm64 sysroot (deploy/sysroot.sh)")
if(NOT EXISTS "${SKEP_SYSROOT}/usr/lib/aarch64-linux-gnu/libc.so")
  message(FATAL_ERROR "no arm64 sysroot at ${SKEP_SYSROOT}: make it with deploy/sysroot.sh")
endif()
set(CMAKE_SYSROOT "${SKEP_SYSROOT}")
set(CMAKE_FIND_ROOT_PATH_MODE_PROGRAM NEVER)
set(CMAKE_FIND_ROOT_PATH_MODE_LIBRARY ONLY)
set(CMAKE_FIND_ROOT_PATH_MODE_INCLUDE ONLY)
set(CMAKE_FIND_ROOT_PATH_MODE_PACKAGE ONLY)
set(ENV{PKG_CONFIG_SYSROOT_DIR} "${SKEP_SYSROOT}")
set(ENV{PKG_CONFIG_LIBDIR}
    "${SKEP_SYSROOT}/usr/lib/aarch64-linux-gnu/pkgconfig:${SKEP_SYSROOT}/usr/share/pkgconfig")
# Libraries that the linked libraries need are looked up in the sysroot, not on the host.
set(CMAKE_EXE_LINKER_FLAGS_INIT
    "-Wl,-rpath-link,${SKEP_SYSROOT}/usr/lib/aarch64-linux-gnu:${SKEP_SYSROOT}/lib/aarch64-linux-gnu")
set(CMAKE_SHARED_LINKER_FLAGS_INIT "${CMAKE_EXE_LINKER_FLAGS_INIT}")
set(CMAKE_CROSSCOMPILING_EMULATOR qemu-aarch64-static;-L;${SKEP_SYSROOT})

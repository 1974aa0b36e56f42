# Build speed on small machines: ccache when present (with a base dir so that
# separate build trees share hits) and lld when the compiler accepts it.
find_program(PINFER_CCACHE ccache)
if(PINFER_CCACHE)
  set(CMAKE_C_COMPILER_LAUNCHER
      ${CMAKE_COMMAND} -E env CCACHE_BASEDIR=${CMAKE_SOURCE_DIR} CCACHE_NOHASHDIR=1
      ${PINFER_CCACHE})
  set(CMAKE_CXX_COMPILER_LAUNCHER ${CMAKE_C_COMPILER_LAUNCHER})
  message(STATUS "pinferc: using ccache (${PINFER_CCACHE})")
endif()

include(CheckCXXSourceCompiles)
set(CMAKE_REQUIRED_LINK_OPTIONS "-fuse-ld=lld")
check_cxx_source_compiles("int main() { return 0; }" PINFER_HAVE_LLD)
unset(CMAKE_REQUIRED_LINK_OPTIONS)
if(PINFER_HAVE_LLD)
  add_link_options(-fuse-ld=lld)
endif()

add_compile_options(-Wall -Wno-unused-parameter)

# PINFER_SANITIZE: the ASan+UBSan build of scripts/test.sh --sanitize.
include(PInferSanitize)

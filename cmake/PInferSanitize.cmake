# PINFER_SANITIZE=ON: the checking build that `scripts/test.sh --sanitize`
# makes in build-sanitize. Every translation unit gets UndefinedBehaviorSanitizer;
# those that include no MLIR/LLVM header (the runtime, codegen, most of
# compiler/, the tests of them) get AddressSanitizer too. MLIR code cannot
# run under ASan with Debian's libMLIR: LLVM's headers poison allocator
# memory in a sanitised translation unit that the unsanitised library never
# unpoisons, so the first MLIRContext stops on a use-after-poison inside
# MLIR's own SmallVector (docs/fuzzing.md, "The sanitised build"). Which units
# use MLIR is found by following their #includes, not listed by hand.
#
# Programs pinferc compiles at test time link the sanitised runtime, so the
# tests see a `c++` first on PATH that adds the same flags (written below and
# put on PATH by ctest itself), and run sanitised too.
option(PINFER_SANITIZE
  "Build with ASan+UBSan (UBSan only in translation units that use MLIR)" OFF)
if(NOT PINFER_SANITIZE)
  return()
endif()
message(STATUS "pinferc: sanitised build (ASan+UBSan; UBSan only where MLIR is used)")

set(PINFER_SANITIZE_FLAGS
  -fsanitize=address,undefined -fno-sanitize-recover=all
  -fno-omit-frame-pointer)
# Line tables only: symbolised reports with file:line, at a fraction of the
# cost of full debug information.
add_compile_options(${PINFER_SANITIZE_FLAGS} -g1)
# --as-needed: CUDA::nvrtc carries CUDA::cuda_driver (the libcuda stub); with
# -fsanitize, g++ links with --no-as-needed unless told otherwise, and every
# program then needs libcuda.so.1 to start (DESIGN.md, "Build facts").
add_link_options(-fsanitize=address,undefined -Wl,--as-needed)

# The compiler that pinferc runs for generated programs during the tests.
# Without UBSan's pointer-overflow check: g++ 12 at -O3 took 25 s to compile
# one generated program with it and 2 s without (the inlined kernels' pointer
# arithmetic), and the whole-job tests compile about a hundred. The runtime's
# kernels keep the check in the runtime itself and in their unit tests.
set(PINFER_SANITIZE_BIN ${CMAKE_BINARY_DIR}/sanitize-bin)
string(REPLACE ";" " " _pinfer_san_flags
  "${PINFER_SANITIZE_FLAGS};-fno-sanitize=pointer-overflow")
file(WRITE ${PINFER_SANITIZE_BIN}/c++
  "#!/bin/sh\n"
  "# Written by cmake/PInferSanitize.cmake: the host compiler for programs\n"
  "# that pinferc compiles during the sanitised tests.\n"
  "exec ${CMAKE_CXX_COMPILER} ${_pinfer_san_flags} \"$@\"\n")
file(CHMOD ${PINFER_SANITIZE_BIN}/c++
  PERMISSIONS OWNER_READ OWNER_WRITE OWNER_EXECUTE GROUP_READ GROUP_EXECUTE
              WORLD_READ WORLD_EXECUTE)
file(WRITE ${CMAKE_BINARY_DIR}/sanitize-env.cmake
  "# Written by cmake/PInferSanitize.cmake; ctest reads it before any test.\n"
  "set(ENV{PATH} \"${PINFER_SANITIZE_BIN}:\$ENV{PATH}\")\n"
  "set(ENV{CXX} \"${PINFER_SANITIZE_BIN}/c++\")\n"
  "set(ENV{UBSAN_OPTIONS} \"print_stacktrace=1:\$ENV{UBSAN_OPTIONS}\")\n")
set_property(DIRECTORY ${CMAKE_SOURCE_DIR} APPEND PROPERTY TEST_INCLUDE_FILES
  ${CMAKE_BINARY_DIR}/sanitize-env.cmake)

# Whether `file` includes an MLIR or LLVM header, directly or through the
# project's own headers. Answers are kept in global properties.
function(_pinfer_uses_mlir file out)
  string(MD5 key "${file}")
  get_property(known GLOBAL PROPERTY _pinfer_mlir_${key} SET)
  if(known)
    get_property(v GLOBAL PROPERTY _pinfer_mlir_${key})
    set(${out} ${v} PARENT_SCOPE)
    return()
  endif()
  set_property(GLOBAL PROPERTY _pinfer_mlir_${key} FALSE) # breaks cycles
  set(result FALSE)
  if(EXISTS ${file})
    get_filename_component(dir ${file} DIRECTORY)
    file(STRINGS ${file} lines REGEX "^[ \t]*#[ \t]*include[ \t]*[<\"]")
    foreach(line ${lines})
      if(line MATCHES "[<\"](mlir|llvm|llvm-c)/")
        set(result TRUE)
        break()
      endif()
      if(line MATCHES "\"([^\"]+)\"")
        set(inc ${CMAKE_MATCH_1})
        foreach(base ${dir} ${CMAKE_SOURCE_DIR})
          if(EXISTS ${base}/${inc} AND NOT IS_DIRECTORY ${base}/${inc})
            _pinfer_uses_mlir(${base}/${inc} sub)
            if(sub)
              set(result TRUE)
            endif()
            break()
          endif()
        endforeach()
        if(result)
          break()
        endif()
      endif()
    endforeach()
  endif()
  set_property(GLOBAL PROPERTY _pinfer_mlir_${key} ${result})
  set(${out} ${result} PARENT_SCOPE)
endfunction()

# Run once every target exists: ASan off for the MLIR units of every target.
function(_pinfer_sanitize_mlir_units)
  set(dirs ${CMAKE_SOURCE_DIR})
  set(n 0)
  while(dirs)
    list(POP_FRONT dirs d)
    get_property(subs DIRECTORY ${d} PROPERTY SUBDIRECTORIES)
    list(APPEND dirs ${subs})
    get_property(targets DIRECTORY ${d} PROPERTY BUILDSYSTEM_TARGETS)
    foreach(t ${targets})
      get_target_property(type ${t} TYPE)
      if(NOT type MATCHES "^(EXECUTABLE|STATIC_LIBRARY|SHARED_LIBRARY|MODULE_LIBRARY|OBJECT_LIBRARY)$")
        continue()
      endif()
      get_target_property(srcs ${t} SOURCES)
      get_target_property(srcdir ${t} SOURCE_DIR)
      foreach(s ${srcs})
        if(NOT s MATCHES "\\.(cpp|cc|cxx)$" OR s MATCHES "^\\$<")
          continue()
        endif()
        if(NOT IS_ABSOLUTE ${s})
          set(s ${srcdir}/${s})
        endif()
        _pinfer_uses_mlir(${s} mlir)
        if(mlir)
          set_property(SOURCE ${s} TARGET_DIRECTORY ${t} APPEND PROPERTY
            COMPILE_OPTIONS -fno-sanitize=address)
          math(EXPR n "${n} + 1")
        endif()
      endforeach()
    endforeach()
  endwhile()
  message(STATUS "pinferc: ${n} translation units use MLIR: UBSan only")
endfunction()
cmake_language(DEFER DIRECTORY ${CMAKE_SOURCE_DIR} CALL _pinfer_sanitize_mlir_units)

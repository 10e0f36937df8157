# Clang's thread-safety analysis over the daemon libraries: every source of the given targets
# goes through clang's front end (-fsyntax-only, where the analysis runs) with
# -Wthread-safety -Werror, with the target's own include directories and definitions. A
# source is checked again when it or a header it includes changes (clang's depfile). Target
# `thread_safety`, part of the default build when clang++ is installed.
function(skep_thread_safety_check)
  find_program(SKEP_CLANGXX NAMES clang++ clang++-14)
  if(NOT SKEP_CLANGXX)
    message(STATUS "clang++ not found: the thread-safety check is not built")
    return()
  endif()
  set(stamps "")
  foreach(target ${ARGN})
    get_target_property(sources ${target} SOURCES)
    get_target_property(source_dir ${target} SOURCE_DIR)
    foreach(source ${sources})
      if(NOT source MATCHES "\\.cc$")
        continue()
      endif()
      cmake_path(ABSOLUTE_PATH source BASE_DIRECTORY ${source_dir} OUTPUT_VARIABLE path)
      cmake_path(RELATIVE_PATH path BASE_DIRECTORY ${PROJECT_SOURCE_DIR} OUTPUT_VARIABLE rel)
      set(stamp ${PROJECT_BINARY_DIR}/thread-safety/${rel}.stamp)
      # The system's own include directory stays the compiler's (as -I it would break
      # libstdc++'s #include_next).
      set(includes "$<FILTER:$<REMOVE_DUPLICATES:$<TARGET_PROPERTY:${target},INCLUDE_DIRECTORIES>>,EXCLUDE,^/usr/include$>")
      set(defines "$<REMOVE_DUPLICATES:$<TARGET_PROPERTY:${target},COMPILE_DEFINITIONS>>")
      add_custom_command(
        OUTPUT ${stamp}
        COMMAND ${SKEP_CLANGXX} -std=c++20 -pthread -fsyntax-only
          -Wthread-safety -Werror=thread-safety -Wno-unknown-warning-option
          "$<$<BOOL:${includes}>:-I$<JOIN:${includes},;-I>>"
          "$<$<BOOL:${defines}>:-D$<JOIN:${defines},;-D>>"
          -MD -MF ${stamp}.d -MT ${stamp} ${path}
        COMMAND ${CMAKE_COMMAND} -E touch ${stamp}
        # The generated protobuf/gRPC headers (ours and containerd's) exist before any
        # source that includes them is read.
        DEPENDS ${path} skep_proto skep_containerd_proto
        DEPFILE ${stamp}.d
        COMMAND_EXPAND_LISTS VERBATIM
        COMMENT "thread-safety: ${rel}")
      list(APPEND stamps ${stamp})
    endforeach()
  endforeach()
  add_custom_target(thread_safety ALL DEPENDS ${stamps})
endfunction()

# Fails when a folder includes a header it must not: the layering the libraries' dependencies
# describe, checked on the sources themselves (an include path reaches every header). Run by the
# build (target `layering`) whenever a source changes:
#   cmake -DSOURCE_DIR=<project root> -DSTAMP=<file> -P cmake/check_layering.cmake
#
#   folder            may not include
#   daemon/common     any other daemon/ folder
#   daemon/executor   daemon/manager, daemon/node, daemon/host, daemon/cli
#   daemon/manager    daemon/node, daemon/host, daemon/cli
#   daemon/node       daemon/manager, daemon/host, daemon/cli
#   daemon/cli        daemon/manager, daemon/node, daemon/host
#   overlay           daemon/ but daemon/common
#   raft, scheduler   daemon/
set(rules
  "daemon/common|daemon/(executor|manager|node|host|cli)/"
  "daemon/executor|daemon/(manager|node|host|cli)/"
  "daemon/manager|daemon/(node|host|cli)/"
  "daemon/node|daemon/(manager|host|cli)/"
  "daemon/cli|daemon/(manager|node|host)/"
  "overlay|daemon/(executor|manager|node|host|cli)/"
  "raft|daemon/"
  "scheduler|daemon/")
set(violations "")
foreach(rule ${rules})
  string(REPLACE "|" ";" parts "${rule}")
  list(GET parts 0 folder)
  list(SUBLIST parts 1 -1 forbidden_parts)
  string(JOIN "|" forbidden ${forbidden_parts})
  file(GLOB_RECURSE files "${SOURCE_DIR}/${folder}/*.h" "${SOURCE_DIR}/${folder}/*.cc")
  foreach(f ${files})
    file(STRINGS "${f}" includes REGEX "^#include \"")
    foreach(line ${includes})
      if(line MATCHES "^#include \"(${forbidden})")
        file(RELATIVE_PATH rel "${SOURCE_DIR}" "${f}")
        string(APPEND violations "  ${rel}: ${line}\n")
      endif()
    endforeach()
  endforeach()
endforeach()
if(violations)
  message(FATAL_ERROR "layering: these includes cross the libraries' boundaries "
                      "(see cmake/check_layering.cmake):\n${violations}")
endif()
file(WRITE "${STAMP}" "ok\n")

# Fails unless the README contains SNIPPET's text verbatim in a ```cpp block, so the quick start
# a reader copies is the one the test command compiles and runs.
file(READ ${README} readme)
file(READ ${SNIPPET} snippet)
string(FIND "${readme}" "```cpp\n${snippet}```" at)
if(at EQUAL -1)
  message(FATAL_ERROR "README.md does not contain ${SNIPPET} verbatim in a ```cpp block")
endif()

# Runs train_char_gpt three times on a 300-step schedule, with a model half as deep and wide as
# the default (the sanitizer build runs this too): straight through; stopped at step 150; resumed
# from that checkpoint. The loss must fall below 2.6 (from ln 65 = 4.17) and the resumed run's
# final validation loss must equal the uninterrupted run's to the last printed digit.
set(common --steps 300 --layers 2 --channels 64 --eval-interval 150 --eval-batches 4
    --sample-interval 300 --sample-length 80 --checkpoint-interval 150)
function(run_gpt name)
  execute_process(COMMAND ${PROGRAM} ${common} --out-dir ${OUT}/${name} ${ARGN}
    OUTPUT_VARIABLE output ERROR_VARIABLE errors RESULT_VARIABLE status)
  message("${output}${errors}")
  if(NOT status EQUAL 0)
    message(FATAL_ERROR "train_char_gpt (${name}) exited with ${status}")
  endif()
  string(REGEX MATCH "final validation loss: ([0-9.]+)" line "${output}")
  if(NOT line)
    message(FATAL_ERROR "train_char_gpt (${name}) printed no final validation loss")
  endif()
  set(${name}_loss ${CMAKE_MATCH_1} PARENT_SCOPE)
endfunction()

run_gpt(straight)
if(straight_loss GREATER_EQUAL 2.6)
  message(FATAL_ERROR "validation loss ${straight_loss} after 300 steps: expected < 2.6")
endif()
run_gpt(first_half --stop-at 150)
run_gpt(resumed --resume ${OUT}/first_half/checkpoint.safetensors)
if(NOT resumed_loss STREQUAL straight_loss)
  message(FATAL_ERROR "resumed run ends at ${resumed_loss}, the uninterrupted one at ${straight_loss}")
endif()

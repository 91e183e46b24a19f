# Runs train_char_gpt three times on a STEPS-step schedule (300), with a model half as deep and
# wide as the default: straight through; stopped half way; resumed from that checkpoint. The loss
# must fall below LOSS_BELOW (2.6, from ln 65 = 4.17) and the resumed run's final validation loss
# must equal the uninterrupted run's to the last printed digit. The sanitizer build takes 40 steps:
# its 300 took 400 s, and the memory it checks is the same at step 40 as at step 300.
if(NOT STEPS)
  set(STEPS 300)
endif()
if(NOT LOSS_BELOW)
  set(LOSS_BELOW 2.6)
endif()
math(EXPR half "${STEPS} / 2")
set(common --steps ${STEPS} --layers 2 --channels 64 --eval-interval ${half} --eval-batches 4
    --sample-interval ${STEPS} --sample-length 80 --checkpoint-interval ${half})
if(WARMUP)
  list(APPEND common --warmup ${WARMUP})
endif()
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
if(straight_loss GREATER_EQUAL LOSS_BELOW)
  message(FATAL_ERROR "validation loss ${straight_loss} after ${STEPS} steps: expected < ${LOSS_BELOW}")
endif()
run_gpt(first_half --stop-at ${half})
run_gpt(resumed --resume ${OUT}/first_half/checkpoint.safetensors)
if(NOT resumed_loss STREQUAL straight_loss)
  message(FATAL_ERROR "resumed run ends at ${resumed_loss}, the uninterrupted one at ${straight_loss}")
endif()

#pragma once
// Small networks: modules, initialisation, optimizers and schedules, parameter files, data.
// The losses are ops: tg::cross_entropy, tg::mse_loss, tg::binary_cross_entropy_with_logits.
#include "nn/container.h"
#include "nn/data.h"
#include "nn/init.h"
#include "nn/module.h"
#include "nn/optim.h"
#include "nn/recurrent.h"
#include "nn/serialize.h"

#pragma once
// Small networks: modules, initialisation, optimizers and schedules, parameter files, data.
// The losses are ops (tg::cross_entropy, tg::mse_loss, ...) and, as libtorch's, modules
// (nn::CrossEntropyLoss, nn::MSELoss, ...).
#include "nn/container.h"
#include "nn/conv.h"
#include "nn/data.h"
#include "nn/init.h"
#include "nn/loss_module.h"
#include "nn/module.h"
#include "nn/norm.h"
#include "nn/optim.h"
#include "nn/recurrent.h"
#include "nn/serialize.h"
#include "nn/transformer.h"

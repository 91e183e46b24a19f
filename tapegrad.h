#pragma once
// Everything a user of tapegrad needs: #include <tapegrad.h>.
#include "autograd/autograd.h"
#include "nn/nn.h"
#include "ops/cnn.h"
#include "ops/everyday.h"
#include "ops/ops.h"
#include "ops/transformer.h"
#include "tools/tools.h"

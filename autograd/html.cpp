// Generates the interactive backprop page (tg::to_html).
#include "autograd/inspect.h"

#pragma once
// Exit heads: what turns one stage's output into class logits. The umbrella header of heads/,
// one header per head kind:
//
//   heads/concept.hpp       exit_head, head_macs, head_workspace_size (what a head is; see there)
//   heads/linear.hpp        linear_head       logits = W x + b (PyTorch weight layout)
//   heads/mlp.hpp           mlp_head          hidden ReLU layers, then a linear layer
//   heads/pooled.hpp        pooled_head       global average pooling + linear
//   heads/grid_pooled.hpp   grid_pooled_head  pooling to a grid of cells (average or mixed) + linear
//   heads/callable.hpp      callable_head, make_head   any callable
//   heads/project.hpp       projected_head, project    a head on a part of a larger state
//   heads/any_head.hpp      any_head          type-erased, for networks built at run time

#include "heads/concept.hpp"
#include "heads/linear.hpp"
#include "heads/mlp.hpp"
#include "heads/pooled.hpp"
#include "heads/grid_pooled.hpp"
#include "heads/callable.hpp"
#include "heads/project.hpp"
#include "heads/any_head.hpp"

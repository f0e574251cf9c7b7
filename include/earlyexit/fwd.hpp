#pragma once
// Forward declarations of the public class templates, for headers that only name them.

#include <concepts>

namespace earlyexit {

class error;
struct network_info;
struct sample_info;
struct stage_info;
struct head_info;
template <std::floating_point Scalar>
struct confidence;
template <std::floating_point Scalar>
struct exit_context;
template <std::floating_point Scalar>
struct exit_result;
template <std::floating_point Scalar>
struct episode;
template <class State, std::floating_point Scalar, class Stages, class Heads>
class multi_exit_network;
template <std::floating_point Scalar>
class any_policy;
class simulated_clock;
struct wall_clock;
struct no_observer;

}  // namespace earlyexit

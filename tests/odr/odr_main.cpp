#include "odr.hpp"

#include <earlyexit/earlyexit.hpp>

int main() { return earlyexit_odr_a() == earlyexit_odr_b() ? 0 : 1; }

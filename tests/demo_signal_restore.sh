#!/usr/bin/env bash
# A demo ended by a signal while it drives the cpufreq governor puts the governor back.
#   tests/demo_signal_restore.sh <demo program> <INT|TERM|HUP|QUIT> [demo flags...]
# Builds a fake sysfs tree (one CPU under schedutil, a RAPL zone), starts the demo on it with
# --dvfs cpufreq --sysfs-root, waits until the demo has switched the CPU to the userspace
# governor and set a speed, sends the signal, and checks that the demo died of that signal and
# that the governor reads schedutil again. Prints "demo_signal_restore: passed" at the end.
set -euo pipefail
set -m  # job control: the demo runs in its own process group and does not ignore SIGINT/SIGQUIT
demo=$1 sig=$2
shift 2
tree="$(mktemp -d)"
trap 'kill -KILL "$pid" 2>/dev/null || true; rm -rf "$tree"' EXIT
pid=""
cpu="$tree/devices/system/cpu/cpu0/cpufreq"
rapl="$tree/class/powercap/intel-rapl:0"
mkdir -p "$cpu" "$rapl"
echo schedutil > "$cpu/scaling_governor"
echo "performance powersave userspace schedutil" > "$cpu/scaling_available_governors"
echo "2000000 1500000 1000000" > "$cpu/scaling_available_frequencies"
echo 2000000 > "$cpu/scaling_cur_freq"
echo "<unsupported>" > "$cpu/scaling_setspeed"
echo 1000000 > "$cpu/scaling_min_freq"
echo 2000000 > "$cpu/scaling_max_freq"
echo package-0 > "$rapl/name"
echo 1000000 > "$rapl/energy_uj"
echo 262143328850 > "$rapl/max_energy_range_uj"

"$demo" --dvfs cpufreq --sysfs-root "$tree" "$@" > "$tree/demo.log" 2>&1 &
pid=$!
for _ in $(seq 1200); do  # up to 120 s for the demo to take the governor and set a speed
  if [ "$(cat "$cpu/scaling_governor")" = userspace ] && [ "$(cat "$cpu/scaling_setspeed")" != "<unsupported>" ]; then
    break
  fi
  if ! kill -0 "$pid" 2>/dev/null; then
    echo "demo_signal_restore: the demo ended before it drove the governor:" >&2
    cat "$tree/demo.log" >&2
    exit 1
  fi
  sleep 0.1
done
if [ "$(cat "$cpu/scaling_governor")" != userspace ]; then
  echo "demo_signal_restore: the demo never switched to the userspace governor" >&2
  exit 1
fi
echo "demo_signal_restore: the demo drives the governor (speed $(cat "$cpu/scaling_setspeed") kHz); sending SIG$sig"
kill -s "$sig" "$pid"
status=0
wait "$pid" || status=$?
pid=""
expected=$((128 + $(kill -l "$sig")))
if [ "$status" != "$expected" ]; then
  echo "demo_signal_restore: the demo exited with status $status, not $expected (killed by SIG$sig):" >&2
  tail -n 20 "$tree/demo.log" >&2
  exit 1
fi
governor="$(cat "$cpu/scaling_governor")"
if [ "$governor" != schedutil ]; then
  echo "demo_signal_restore: after SIG$sig the governor is '$governor', not schedutil" >&2
  exit 1
fi
echo "demo_signal_restore: passed: killed by SIG$sig (status $status), governor back to schedutil"

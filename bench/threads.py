#!/usr/bin/env python3
"""Where the CPU goes, thread by thread: every second, for each running skepd, the time each
named thread spent on a CPU and waiting for one (run queue), in milliseconds, from
/proc/PID/task/TID/schedstat. Threads of one name are summed (gRPC's pools, manager-io).

    bench/threads.py [--match TEXT] [--min MS] > threads.txt   (as root; Ctrl-C stops it)

A line per second: `HH:MM:SS | [process] name:cpu/wait ...`, the busiest first. A process is
named by the last 20 characters of its --data-dir (lab nodes: .../bscale/m1/data). --match keeps
the processes whose command line holds TEXT (default: skepd); --min hides threads below MS of
CPU and wait together (default 20). A raft thread that waits hundreds of milliseconds a second
for a CPU is a leader whose heartbeats go out late, whatever its own work.
"""
import argparse
import collections
import os
import time


def processes(match):
    out = {}
    for pid in os.listdir('/proc'):
        if not pid.isdigit():
            continue
        try:
            with open(f'/proc/{pid}/cmdline', 'rb') as f:
                args = [a.decode(errors='replace') for a in f.read().split(b'\0') if a]
        except OSError:
            continue
        if not args or not os.path.basename(args[0]).startswith(match):
            continue
        name = pid
        for i, a in enumerate(args):
            if a.startswith('--data-dir='):
                name = a.split('=', 1)[1]
            elif a == '--data-dir' and i + 1 < len(args):
                name = args[i + 1]
        out[pid] = name[-20:]
    return out


def threads(pid):
    out = {}
    try:
        tids = os.listdir(f'/proc/{pid}/task')
    except OSError:
        return out
    for tid in tids:
        try:
            with open(f'/proc/{pid}/task/{tid}/comm') as f:
                comm = f.read().strip()
            with open(f'/proc/{pid}/task/{tid}/schedstat') as f:
                cpu, wait, _ = map(int, f.read().split())
        except (OSError, ValueError):
            continue
        out[tid] = (comm, cpu, wait)
    return out


def main():
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('--match', default='skepd')
    p.add_argument('--min', type=float, default=20)
    a = p.parse_args()
    before = {}
    try:
        while True:
            start = time.time()
            line = [time.strftime('%H:%M:%S')]
            for pid, name in sorted(processes(a.match).items(), key=lambda x: x[1]):
                now = threads(pid)
                was = before.get(pid, {})
                by_name = collections.defaultdict(lambda: [0.0, 0.0])
                for tid, (comm, cpu, wait) in now.items():
                    if tid in was:
                        by_name[comm][0] += (cpu - was[tid][1]) / 1e6
                        by_name[comm][1] += (wait - was[tid][2]) / 1e6
                before[pid] = now
                busy = sorted(by_name.items(), key=lambda x: -(x[1][0] + x[1][1]))
                shown = [f'{c}:{v[0]:.0f}/{v[1]:.0f}' for c, v in busy if v[0] + v[1] >= a.min]
                line.append(f'[{name}] ' + ' '.join(shown))
            print(' | '.join(line), flush=True)
            time.sleep(max(0.0, 1 - (time.time() - start)))
    except KeyboardInterrupt:
        pass


if __name__ == '__main__':
    main()

package main

import (
	"bufio"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
)

// clockTicks returns the kernel's clock ticks per second (the unit of
// /proc/PID/stat times), 100 when getconf cannot tell.
func clockTicks() float64 {
	out, err := exec.Command("getconf", "CLK_TCK").Output()
	if err != nil {
		return 100
	}
	n, err := strconv.Atoi(strings.TrimSpace(string(out)))
	if err != nil || n <= 0 {
		return 100
	}
	return float64(n)
}

// cpuTicks returns utime+stime of process pid, all its threads together, in
// clock ticks.
func cpuTicks(pid int) (int64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	return parseStatCPU(string(b))
}

// parseStatCPU reads utime (field 14) and stime (field 15) from a
// /proc/PID/stat line. The command name (field 2) is in parentheses and may
// hold spaces and parentheses itself, so fields are counted from the last ')'.
func parseStatCPU(stat string) (int64, error) {
	i := strings.LastIndexByte(stat, ')')
	if i < 0 {
		return 0, fmt.Errorf("malformed stat line %q", stat)
	}
	f := strings.Fields(stat[i+1:])
	// f[0] is field 3 (state), so field n is f[n-3].
	if len(f) < 13 {
		return 0, fmt.Errorf("stat line has %d fields after the name, want at least 13", len(f))
	}
	utime, err := strconv.ParseInt(f[11], 10, 64)
	if err != nil {
		return 0, fmt.Errorf("utime: %w", err)
	}
	stime, err := strconv.ParseInt(f[12], 10, 64)
	if err != nil {
		return 0, fmt.Errorf("stime: %w", err)
	}
	return utime + stime, nil
}

// peakRSS returns VmHWM of process pid in KiB: the largest resident set it
// has had since it started.
func peakRSS(pid int) (int64, error) {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	defer f.Close()
	return parseVmHWM(f)
}

func parseVmHWM(f *os.File) (int64, error) {
	s := bufio.NewScanner(f)
	for s.Scan() {
		if v, ok := strings.CutPrefix(s.Text(), "VmHWM:"); ok {
			return parseKiB(v)
		}
	}
	if err := s.Err(); err != nil {
		return 0, err
	}
	return 0, fmt.Errorf("no VmHWM in %s", f.Name())
}

// parseKiB reads a /proc/PID/status size such as "   12345 kB".
func parseKiB(v string) (int64, error) {
	v = strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB"))
	return strconv.ParseInt(v, 10, 64)
}

// coreTimes holds, for each CPU, busy and total time from /proc/stat, in
// clock ticks.
type coreTimes map[string][2]int64

// readCoreTimes reads the per-CPU lines of /proc/stat.
func readCoreTimes() (coreTimes, error) {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return nil, err
	}
	return parseCoreTimes(string(b)), nil
}

func parseCoreTimes(stat string) coreTimes {
	ct := coreTimes{}
	for _, line := range strings.Split(stat, "\n") {
		f := strings.Fields(line)
		if len(f) < 8 || !strings.HasPrefix(f[0], "cpu") || f[0] == "cpu" {
			continue
		}
		var busy, total int64
		// user nice system idle iowait irq softirq steal [guest guest_nice];
		// guest time is already counted in user.
		for i := 1; i < len(f) && i <= 8; i++ {
			n, err := strconv.ParseInt(f[i], 10, 64)
			if err != nil {
				break
			}
			total += n
			if i != 4 && i != 5 {
				busy += n
			}
		}
		ct[f[0]] = [2]int64{busy, total}
	}
	return ct
}

// busy returns the share of time CPU name ("cpu0") was busy between before
// and after, from 0 to 1; -1 when unknown.
func busy(before, after coreTimes, name string) float64 {
	b, ok1 := before[name]
	a, ok2 := after[name]
	if !ok1 || !ok2 || a[1] <= b[1] {
		return -1
	}
	return float64(a[0]-b[0]) / float64(a[1]-b[1])
}

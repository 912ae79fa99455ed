package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
	"time"
)

// procs starts the benchmark's processes, each pinned to CPUs with taskset
// and in a process group of its own, and stops them. For each live process it
// keeps a file pids/NAME.pid holding the group id, so that bench/run can end
// whatever a crashed bench left behind. Not safe for concurrent use.
type procs struct {
	dir  string // logs and pid files
	live map[*proc]struct{}
}

func newProcs(dir string) (*procs, error) {
	if err := os.MkdirAll(filepath.Join(dir, "pids"), 0o755); err != nil {
		return nil, err
	}
	return &procs{dir: dir, live: map[*proc]struct{}{}}, nil
}

// proc is one started process. Its pid is also its process group id.
type proc struct {
	name    string
	cmd     *exec.Cmd
	pidFile string
	logFile string
	exited  chan struct{} // closed once the process has been waited for
	err     error         // set before exited is closed
	ps      *procs
}

// start runs argv pinned to cpus (taskset syntax, "0" or "1"; "" does not
// pin it), with env added to this process's environment; its output goes to NAME.log in the work
// directory. The process gets SIGTERM if bench dies first.
func (ps *procs) start(name, cpus string, env []string, argv ...string) (*proc, error) {
	logFile := filepath.Join(ps.dir, name+".log")
	out, err := os.Create(logFile)
	if err != nil {
		return nil, err
	}
	defer out.Close()
	if cpus != "" {
		argv = append([]string{"taskset", "-c", cpus}, argv...)
	}
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Stdout, cmd.Stderr = out, out
	cmd.Env = append(os.Environ(), env...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGTERM}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("starting %s: %w", name, err)
	}
	p := &proc{
		name:    name,
		cmd:     cmd,
		pidFile: filepath.Join(ps.dir, "pids", name+".pid"),
		logFile: logFile,
		exited:  make(chan struct{}),
		ps:      ps,
	}
	ps.live[p] = struct{}{}
	if err := os.WriteFile(p.pidFile, []byte(strconv.Itoa(cmd.Process.Pid)+"\n"), 0o644); err != nil {
		p.stop()
		return nil, err
	}
	go func() {
		p.err = cmd.Wait()
		close(p.exited)
	}()
	return p, nil
}

// run starts argv like start and waits for it to exit; when ctx ends first
// the process is stopped and ctx's error returned.
func (ps *procs) run(ctx context.Context, name, cpus string, argv ...string) (*proc, error) {
	p, err := ps.start(name, cpus, nil, argv...)
	if err != nil {
		return nil, err
	}
	select {
	case <-p.exited:
		p.stop()
		if p.err != nil {
			return p, fmt.Errorf("%s: %w (see %s)", name, p.err, p.logFile)
		}
		return p, nil
	case <-ctx.Done():
		p.stop()
		return p, ctx.Err()
	}
}

// pid is the process id, which /proc is read by.
func (p *proc) pid() int { return p.cmd.Process.Pid }

// running reports whether the process has not exited yet.
func (p *proc) running() bool {
	select {
	case <-p.exited:
		return false
	default:
		return true
	}
}

// stop ends the process: SIGTERM to its group, then SIGKILL to what is left
// of the group after five seconds. It is safe to call more than once.
func (p *proc) stop() {
	if _, ok := p.ps.live[p]; !ok {
		return
	}
	pgid := p.cmd.Process.Pid
	if p.running() {
		syscall.Kill(-pgid, syscall.SIGTERM)
	}
	select {
	case <-p.exited:
	case <-time.After(5 * time.Second):
		syscall.Kill(-pgid, syscall.SIGKILL)
		<-p.exited
	}
	// Children of the leader (nginx workers) may outlive it; the group id
	// stays theirs while any of them lives.
	if err := syscall.Kill(-pgid, 0); err == nil {
		syscall.Kill(-pgid, syscall.SIGKILL)
	}
	os.Remove(p.pidFile)
	delete(p.ps.live, p)
}

// stopAll stops every process still running.
func (ps *procs) stopAll() {
	for p := range ps.live {
		p.stop()
	}
}

// output returns what the process wrote to its log.
func (p *proc) output() (string, error) {
	b, err := os.ReadFile(p.logFile)
	return string(b), err
}

// errExited reports a process that ended while it should be serving.
var errExited = errors.New("exited early")

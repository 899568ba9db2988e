package image

import (
	"context"
	"sync"
)

// Job states.
const (
	JobQueued    = "queued"
	JobRunning   = "running"
	JobDone      = "done"
	JobFailed    = "failed"
	JobCancelled = "cancelled"
)

// Job is one queued build.
type Job struct {
	Image string

	cancel context.CancelFunc
	done   chan struct{}

	mu       sync.Mutex
	state    string
	manifest *Manifest
	err      error
}

// State is the job's state (Job* constants).
func (j *Job) State() string { j.mu.Lock(); defer j.mu.Unlock(); return j.state }

// Cancel stops the job: a queued job never starts, a running one is killed.
func (j *Job) Cancel() { j.cancel() }

// Done is closed when the job has finished.
func (j *Job) Done() <-chan struct{} { return j.done }

// Wait waits for the job and returns its result.
func (j *Job) Wait() (*Manifest, error) {
	<-j.done
	j.mu.Lock()
	defer j.mu.Unlock()
	return j.manifest, j.err
}

// Queue runs builds: one at a time per image, in submission order, and at
// most Parallel images at once (default 1: a build uses every core).
type Queue struct {
	b        *Builder
	parallel chan struct{}

	mu    sync.Mutex
	chain map[string]chan struct{} // image -> done channel of its last job
	jobs  []*Job
}

// NewQueue returns a queue over b running at most parallel builds at once
// (1 when parallel < 1).
func NewQueue(b *Builder, parallel int) *Queue {
	if parallel < 1 {
		parallel = 1
	}
	return &Queue{b: b, parallel: make(chan struct{}, parallel), chain: map[string]chan struct{}{}}
}

// Submit loads the recipe (a malformed one is an error at once) and queues
// its build. ctx bounds the whole job, waiting included.
func (q *Queue) Submit(ctx context.Context, recipeDir string, opts BuildOptions) (*Job, error) {
	r, err := LoadRecipe(recipeDir, opts.vars())
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(ctx)
	j := &Job{Image: r.Name, cancel: cancel, done: make(chan struct{}), state: JobQueued}
	q.mu.Lock()
	prev := q.chain[r.Name]
	q.chain[r.Name] = j.done
	q.jobs = append(q.jobs, j)
	q.mu.Unlock()
	go func() {
		defer cancel()
		defer close(j.done)
		finish := func(m *Manifest, err error) {
			j.mu.Lock()
			defer j.mu.Unlock()
			j.manifest, j.err = m, err
			switch {
			case err == nil:
				j.state = JobDone
			case ctx.Err() != nil:
				j.state = JobCancelled
			default:
				j.state = JobFailed
			}
		}
		if prev != nil {
			select {
			case <-prev:
			case <-ctx.Done():
				finish(nil, ctx.Err())
				return
			}
		}
		select {
		case q.parallel <- struct{}{}:
		case <-ctx.Done():
			finish(nil, ctx.Err())
			return
		}
		defer func() { <-q.parallel }()
		j.mu.Lock()
		j.state = JobRunning
		j.mu.Unlock()
		finish(q.b.BuildRecipe(ctx, r, opts))
	}()
	return j, nil
}

// Jobs lists the submitted jobs, oldest first.
func (q *Queue) Jobs() []*Job {
	q.mu.Lock()
	defer q.mu.Unlock()
	return append([]*Job(nil), q.jobs...)
}

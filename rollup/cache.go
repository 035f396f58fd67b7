package rollup

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"golang.org/x/sync/singleflight"
)

// ErrBusy means a read was not started: as many as allowed were running
// and none finished within the wait. The API answers 503; try again.
var ErrBusy = errors.New("busy: too many reports being computed, try again shortly")

// versioned is a source that can say which committed state it shows;
// *storage.DB satisfies it.
type versioned interface {
	DataVersion() (uint64, error)
}

// commitClock says when the first commit after a version was made (exact
// false: not known); *storage.DB satisfies it. A source without it never
// gets an outdated result.
type commitClock interface {
	CommittedAfter(version uint64) (at time.Time, exact bool)
}

// maxCached bounds the queries whose latest result is kept.
const maxCached = 128

// resultCache keeps the latest result of each query with the data version
// it was computed from, so a burst of the same query computes it once
// however many ask (they wait for the one computation). A result of an
// older version is recomputed; with maxStale set, while that runs the old
// one is still answered, for at most maxStale after the commit that
// outdated it (when the source says when that was): a daemon that commits
// every second does not make every request wait for every report again,
// and data that arrived a minute ago is in the first answer after it,
// however long no one asked. Computations take a slot of their
// lane's small pool, so their memory and CPU are bounded whatever the
// number of requests; a long one (a zone's first recut) has a lane of its
// own and does not hold up the others.
type resultCache struct {
	mu       sync.Mutex
	results  map[string]*result
	flight   singleflight.Group
	lanes    map[lane]chan struct{} // nil channel: unbounded
	wait     time.Duration
	maxStale time.Duration
}

type result struct {
	v       any
	version uint64
}

// lane is a pool of computation slots.
type lane int

const (
	laneDefault lane = iota
	laneRecut
)

func newResultCache(maxHeavy int, wait, maxStale time.Duration) *resultCache {
	c := &resultCache{results: map[string]*result{}, wait: wait, maxStale: maxStale, lanes: map[lane]chan struct{}{}}
	if maxHeavy > 0 {
		c.lanes[laneDefault] = make(chan struct{}, maxHeavy)
		c.lanes[laneRecut] = make(chan struct{}, 1)
	}
	return c
}

// get returns the result of key at version, computing it once; clock
// (nil: none) says how long an older result has been outdated.
func (c *resultCache) get(version uint64, clock commitClock, key string, ln lane, compute func() (any, error)) (any, error) {
	c.mu.Lock()
	r := c.results[key]
	switch {
	case r != nil && r.version >= version: // newer is as good: the caller read the version a moment ago
		c.mu.Unlock()
		return r.v, nil
	case r != nil && c.maxStale > 0 && clock != nil:
		outdated, exact := clock.CommittedAfter(r.version)
		if exact && time.Since(outdated) <= c.maxStale {
			v := r.v
			c.mu.Unlock()
			c.flight.DoChan(flightKey(version, key), c.computeFn(version, key, ln, compute)) // refreshed meanwhile
			return v, nil
		}
	}
	c.mu.Unlock()
	v, err, _ := c.flight.Do(flightKey(version, key), c.computeFn(version, key, ln, compute))
	return v, err
}

func flightKey(version uint64, key string) string { return fmt.Sprintf("%d|%s", version, key) }

// computeFn computes key at version in a slot of its lane and keeps the
// result unless a newer one arrived meanwhile. The flight is shared by
// every caller: no one caller's context may cancel it, only the wait
// bounds it.
func (c *resultCache) computeFn(version uint64, key string, ln lane, compute func() (any, error)) func() (any, error) {
	return func() (any, error) {
		if err := c.acquire(context.Background(), ln); err != nil {
			return nil, err
		}
		defer c.release(ln)
		v, err := compute()
		if err != nil {
			return nil, err
		}
		c.mu.Lock()
		defer c.mu.Unlock()
		if r := c.results[key]; r == nil && len(c.results) < maxCached || r != nil && r.version <= version {
			c.results[key] = &result{v: v, version: version}
		}
		return v, nil
	}
}

// run computes without caching (a source with no version), in a slot.
func (c *resultCache) run(ctx context.Context, ln lane, compute func() (any, error)) (any, error) {
	if err := c.acquire(ctx, ln); err != nil {
		return nil, err
	}
	defer c.release(ln)
	return compute()
}

func (c *resultCache) acquire(ctx context.Context, ln lane) error {
	slots := c.lanes[ln]
	if slots == nil {
		return nil
	}
	select {
	case slots <- struct{}{}:
		return nil
	default:
	}
	t := time.NewTimer(c.wait)
	defer t.Stop()
	select {
	case slots <- struct{}{}:
		return nil
	case <-t.C:
		return ErrBusy
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (c *resultCache) release(ln lane) {
	if slots := c.lanes[ln]; slots != nil {
		<-slots
	}
}

// cached runs compute through the cache when src has a version.
func cached[T any](ctx context.Context, c *resultCache, src any, key string, ln lane, compute func() (T, error)) (T, error) {
	fn := func() (any, error) { return compute() }
	var v any
	var err error
	if vs, ok := src.(versioned); ok {
		var version uint64
		if version, err = vs.DataVersion(); err != nil {
			var zero T
			return zero, err
		}
		clock, _ := src.(commitClock)
		v, err = c.get(version, clock, key, ln, fn)
	} else {
		v, err = c.run(ctx, ln, fn)
	}
	if err != nil {
		var zero T
		return zero, err
	}
	return v.(T), nil
}

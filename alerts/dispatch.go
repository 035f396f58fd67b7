package alerts

import (
	"context"
	"encoding/json"
	"log/slog"
	"math/rand/v2"
	"sync"
	"time"

	"github.com/fleetmeter/fleetmeter/storage"
)

// OutboxStore keeps notifications until they are delivered; *storage.DB
// satisfies it.
type OutboxStore interface {
	AlertOutbox() ([]storage.AlertDelivery, error)
	UpdateAlertDelivery(seq uint64, value []byte) error
}

// delivery is one notification on its way to one receiver, as stored.
type delivery struct {
	Notifier     string        `json:"notifier"` // a name: URLs are secrets and stay out of the database
	Notification *Notification `json:"notification"`
	Attempts     int           `json:"attempts"`
	NextAttempt  time.Time     `json:"next_attempt"`
	LastError    string        `json:"last_error,omitempty"`
}

// maxInFlight bounds the attempts running at once per receiver: a
// receiver that hangs holds at most this many goroutines.
const maxInFlight = 4

// DeliveryStats count what happened to notifications, per receiver.
type DeliveryStats struct {
	Delivered int64 `json:"delivered"`
	Failed    int64 `json:"failed_attempts"`
	GaveUp    int64 `json:"gave_up"`
	Pending   int   `json:"pending"`
}

// dispatcher delivers the outbox. Step starts the attempts that are due,
// each in its own goroutine with a timeout, and returns at once: a
// receiver that hangs or fails never delays evaluation, other receivers,
// or other rules on the same receiver. Messages of one rule instance to
// one receiver go in order (a resolve never overtakes its firing).
// Failed attempts are retried with exponential backoff and jitter.
type dispatcher struct {
	store     OutboxStore
	notifiers map[string]Notifier
	timeout   time.Duration
	attempts  int
	backoff   func(attempt int) time.Duration
	log       *slog.Logger

	mu       sync.Mutex
	inFlight map[uint64]bool
	busy     map[string]int
	stats    map[string]*DeliveryStats
	wg       sync.WaitGroup
}

// backoff: 30 s, 1 min, 2 min, … capped at 30 min, ±20 % jitter.
func defaultBackoff(attempt int) time.Duration {
	d := 30 * time.Second << min(attempt-1, 6)
	d = min(d, 30*time.Minute)
	return time.Duration(float64(d) * (0.8 + 0.4*rand.Float64()))
}

func newDispatcher(store OutboxStore, notifiers map[string]Notifier, timeout time.Duration, attempts int, log *slog.Logger) *dispatcher {
	d := &dispatcher{store: store, notifiers: notifiers, timeout: timeout, attempts: attempts, backoff: defaultBackoff, log: log,
		inFlight: map[uint64]bool{}, busy: map[string]int{}, stats: map[string]*DeliveryStats{}}
	for name := range notifiers {
		d.stats[name] = &DeliveryStats{}
	}
	return d
}

// Step starts every due attempt. It does not wait for them.
func (d *dispatcher) Step(ctx context.Context, now time.Time) error {
	pending, err := d.store.AlertOutbox()
	if err != nil {
		return err
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	for _, s := range d.stats {
		s.Pending = 0
	}
	blocked := map[string]bool{} // notifier + instance with an earlier message waiting
	for _, p := range pending {
		var dl delivery
		if err := json.Unmarshal(p.Value, &dl); err != nil || dl.Notification == nil {
			d.log.Error("dropping an unreadable alert notification", "seq", p.Seq, "err", err)
			_ = d.store.UpdateAlertDelivery(p.Seq, nil)
			continue
		}
		n, ok := d.notifiers[dl.Notifier]
		if !ok {
			d.log.Warn("dropping a notification for a receiver no longer configured", "notifier", dl.Notifier, "rule", dl.Notification.Rule)
			_ = d.store.UpdateAlertDelivery(p.Seq, nil)
			continue
		}
		d.stats[dl.Notifier].Pending++
		order := dl.Notifier + "\x00" + dl.Notification.Rule + "\x00" + dl.Notification.Instance
		if blocked[order] {
			continue
		}
		blocked[order] = true
		if d.inFlight[p.Seq] || now.Before(dl.NextAttempt) || d.busy[dl.Notifier] >= maxInFlight {
			continue
		}
		d.inFlight[p.Seq] = true
		d.busy[dl.Notifier]++
		d.wg.Add(1)
		go d.attempt(ctx, now, p.Seq, dl, n)
	}
	return nil
}

// attempt makes one try and records its outcome.
func (d *dispatcher) attempt(ctx context.Context, now time.Time, seq uint64, dl delivery, n Notifier) {
	defer d.wg.Done()
	actx, cancel := context.WithTimeout(ctx, d.timeout)
	dl.Notification.Attempts = dl.Attempts + 1
	err := n.Send(actx, dl.Notification)
	cancel()
	dl.Attempts++
	var value []byte
	log := d.log.With("notifier", n.Name(), "receiver", n.Masked(), "rule", dl.Notification.Rule, "event", dl.Notification.Event, "attempt", dl.Attempts)
	d.mu.Lock()
	st := d.stats[dl.Notifier]
	switch {
	case err == nil:
		st.Delivered++
		st.Pending--
		log.Info("notification delivered")
	case ctx.Err() != nil:
		// Shutting down: the message stays as it was, for the next start.
		d.mu.Unlock()
		d.finish(seq, dl.Notifier)
		return
	case dl.Attempts >= d.attempts:
		st.Failed++
		st.GaveUp++
		st.Pending--
		log.Error("notification failed; giving up", "err", err)
	default:
		st.Failed++
		dl.LastError = err.Error()
		dl.NextAttempt = now.Add(d.backoff(dl.Attempts))
		log.Warn("notification failed; will retry", "err", err, "next_attempt", dl.NextAttempt)
		value, _ = json.Marshal(dl)
	}
	d.mu.Unlock()
	if uerr := d.store.UpdateAlertDelivery(seq, value); uerr != nil {
		log.Error("recording a delivery failed", "err", uerr)
	}
	d.finish(seq, dl.Notifier)
}

func (d *dispatcher) finish(seq uint64, notifier string) {
	d.mu.Lock()
	delete(d.inFlight, seq)
	d.busy[notifier]--
	d.mu.Unlock()
}

// Wait blocks until the attempts started so far have ended.
func (d *dispatcher) Wait() { d.wg.Wait() }

// Stats is a copy of the counters.
func (d *dispatcher) Stats() map[string]DeliveryStats {
	d.mu.Lock()
	defer d.mu.Unlock()
	out := make(map[string]DeliveryStats, len(d.stats))
	for k, v := range d.stats {
		out[k] = *v
	}
	return out
}

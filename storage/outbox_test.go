package storage

import (
	"bytes"
	"strings"
	"testing"
	"time"
)

func apply(t *testing.T, db *DB, recs ...Usage) {
	t.Helper()
	if _, err := db.Apply(&Batch{Records: recs}); err != nil {
		t.Fatal(err)
	}
}

func pending(t *testing.T, db *DB) []Change {
	t.Helper()
	var all []Change
	var after []byte
	for {
		page, err := db.PendingChanges(after, 2) // small pages: paging is part of the contract
		if err != nil {
			t.Fatal(err)
		}
		if len(page) == 0 {
			return all
		}
		all = append(all, page...)
		after = page[len(page)-1].Key
	}
}

func tables(chs []Change) string {
	var b strings.Builder
	for _, c := range chs {
		b.WriteByte(c.Table)
	}
	return b.String()
}

// Entries come in key order with the row read in the same transaction; an
// entry whose row changed after it was read survives its acknowledgement.
func TestOutboxReadAndAcknowledge(t *testing.T) {
	db := openTest(t, time.UTC)
	day := time.Date(2026, 4, 10, 9, 0, 0, 0, time.UTC).UnixMilli()
	a, b := rec("a", day, 100, 10, 0.5), rec("b", day+86400_000, 7, 3, 0.25)
	a.User, a.UserLabel = "telegram:1", "Alice"
	apply(t, db, a, b)
	chs := pending(t, db)
	if got := tables(chs); got != "ddsww" {
		t.Fatalf("tables %q, want two daily, one session and two weekly rows (two users)", got)
	}
	for i := 1; i < len(chs); i++ {
		if bytes.Compare(chs[i-1].Key, chs[i].Key) >= 0 {
			t.Fatalf("entries not in key order at %d", i)
		}
	}
	d := chs[0]
	if d.Gone || d.Daily.Messages != 1 || d.Daily.Input != 100 || d.Daily.CostNanos != 500_000_000 || d.UserLabel != "Alice" || d.Daily.Agent != "main" || DayString(d.Daily.Period) != "2026-04-10" {
		t.Errorf("daily change %+v", d)
	}
	if s := chs[2]; s.Table != OutboxSession || s.Session.SessionID != "s1" || s.Session.Models["anthropic/m"].Messages != 2 {
		t.Errorf("session change %+v", s)
	}

	// A new call on the first day while its entry is "in flight".
	c := rec("c", day+60_000, 1, 1, 0)
	c.User = a.User
	apply(t, db, c)
	n, err := db.AckChanges(chs)
	if err != nil {
		t.Fatal(err)
	}
	left := pending(t, db)
	if n != len(chs)-3 || tables(left) != "dsw" {
		t.Fatalf("acked %d of %d, left %q; want the changed daily, session and weekly rows left", n, len(chs), tables(left))
	}
	if left[0].Daily.Messages != 2 || left[0].Counter <= chs[0].Counter {
		t.Errorf("left daily %+v, want the new state with a higher counter", left[0])
	}
	if _, err := db.AckChanges(left); err != nil {
		t.Fatal(err)
	}
	if n, _ := db.OutboxPending(); n != 0 {
		t.Errorf("%d entries left after acknowledging all", n)
	}
}

// A row that goes to zero is still sent (as gone, zero totals), so
// upstream's absolute value follows.
func TestOutboxGoneRow(t *testing.T) {
	db := openTest(t, time.UTC)
	ts := time.Date(2026, 4, 10, 9, 0, 0, 0, time.UTC).UnixMilli()
	apply(t, db, rec("k", ts, 10, 1, 0))
	db.AckChanges(pending(t, db))
	bigger := rec("k", ts, 20, 1, 0) // a larger copy of the same call under another model
	bigger.Model = "m2"
	apply(t, db, bigger)
	var gone, kept int
	for _, c := range pending(t, db) {
		if c.Table != OutboxDaily {
			continue
		}
		if c.Daily.Model == "m" && c.Gone && c.Daily.Totals.IsZero() {
			gone++
		}
		if c.Daily.Model == "m2" && !c.Gone && c.Daily.Input == 20 {
			kept++
		}
	}
	if gone != 1 || kept != 1 {
		t.Errorf("gone %d, kept %d; want the old row gone and the new one present", gone, kept)
	}
}

func TestQueueHostDaysAndAgents(t *testing.T) {
	db := openTest(t, time.UTC)
	ts := time.Date(2026, 4, 10, 9, 0, 0, 0, time.UTC).UnixMilli()
	if err := db.PutHostSample(HostSample{TS: ts, CPUPct: 20, CPUCount: 2}); err != nil {
		t.Fatal(err)
	}
	for i, want := range []int{1, 0} {
		if n, err := db.QueueHostDays(); err != nil || n != want {
			t.Fatalf("queue %d: %d, %v; want %d", i, n, err, want)
		}
	}
	db.PutHostSample(HostSample{TS: ts + 15_000, CPUPct: 40, CPUCount: 2})
	if n, _ := db.QueueHostDays(); n != 1 {
		t.Errorf("a changed day queued %d times, want 1", n)
	}
	chs := pending(t, db)
	if len(chs) != 1 || chs[0].Table != OutboxHost || chs[0].Host.Samples != 2 || DayString(chs[0].Host.Day) != "2026-04-10" {
		t.Fatalf("host changes %+v", chs)
	}
	db.AckChanges(chs)

	reg := []AgentInfo{{ID: "main", Name: "Main", Team: "ops"}, {ID: "research", Owner: "bob"}, {ID: ""}}
	if n, err := db.QueueAgents(reg); err != nil || n != 2 {
		t.Fatalf("queue agents: %d %v", n, err)
	}
	if n, _ := db.QueueAgents(reg); n != 0 {
		t.Errorf("an unchanged registry queued %d", n)
	}
	if n, _ := db.QueueAgents([]AgentInfo{{ID: "main", Name: "Main", Team: "growth"}}); n != 2 {
		t.Errorf("a changed and a removed agent queued %d, want 2", n)
	}
	chs = pending(t, db)
	if len(chs) != 2 || chs[0].Agent.Team != "growth" || chs[0].Gone || chs[1].Agent.ID != "research" || !chs[1].Gone {
		t.Errorf("agent changes %+v", chs)
	}
	if got, _ := db.Agents(); len(got) != 1 || got[0].Team != "growth" {
		t.Errorf("stored registry %+v", got)
	}
}

func TestQuarantine(t *testing.T) {
	db := openTest(t, time.UTC)
	ts := time.Date(2026, 4, 10, 9, 0, 0, 0, time.UTC).UnixMilli()
	apply(t, db, rec("a", ts, 1, 1, 0))
	chs := pending(t, db)
	n, err := db.QuarantineChanges(chs[:1], "value out of range", time.Unix(0, 0))
	if err != nil || n != 1 {
		t.Fatalf("quarantine: %d %v", n, err)
	}
	q, _ := db.Quarantined()
	if len(q) != 1 || q[0].Error != "value out of range" || !strings.HasPrefix(q[0].Row, "daily 2026-04-10") {
		t.Fatalf("quarantined %+v", q)
	}
	if left := pending(t, db); len(left) != len(chs)-1 {
		t.Errorf("%d entries left, want %d: the quarantined one leaves the outbox", len(left), len(chs)-1)
	}
	// The row changes: it is tried again, and once through leaves the quarantine.
	apply(t, db, rec("b", ts+1000, 1, 1, 0))
	retry := pending(t, db)
	if retry[0].Table != OutboxDaily || retry[0].Daily.Messages != 2 {
		t.Fatalf("changed row not queued again: %+v", retry[0])
	}
	db.AckChanges(retry)
	if n, _ := db.QuarantineCount(); n != 0 {
		t.Errorf("%d rows still quarantined after going through", n)
	}
	db.QuarantineChanges(nil, "", time.Now())
	apply(t, db, rec("c", ts+2000, 1, 1, 0))
	chs = pending(t, db)
	db.QuarantineChanges(chs, "bad", time.Now())
	if n, err := db.RequeueQuarantined(); err != nil || n != len(chs) {
		t.Errorf("requeued %d, %v; want %d", n, err, len(chs))
	}
	if left := pending(t, db); len(left) != len(chs) {
		t.Errorf("%d entries after requeue, want %d", len(left), len(chs))
	}
}

// After a restore from backup the counters went back: RequeueAll marks
// every row above the highest counter upstream saw.
func TestRequeueAll(t *testing.T) {
	db := openTest(t, time.UTC)
	ts := time.Date(2026, 4, 10, 9, 0, 0, 0, time.UTC).UnixMilli()
	apply(t, db, rec("a", ts, 1, 1, 0))
	db.PutHostSample(HostSample{TS: ts, CPUCount: 1})
	db.QueueAgents([]AgentInfo{{ID: "main"}})
	db.QueueHostDays()
	db.AckChanges(pending(t, db))
	if err := db.RequeueAll(1000); err != nil {
		t.Fatal(err)
	}
	chs := pending(t, db)
	if got := tables(chs); got != "adhsw" {
		t.Errorf("requeued tables %q, want every row", got)
	}
	for _, c := range chs {
		if c.Counter <= 1000 {
			t.Errorf("%s counter %d, want above 1000", DescribeOutboxKey(c.Key), c.Counter)
		}
	}
	if seq, _ := db.ChangeCounter(); seq != chs[0].Counter {
		t.Errorf("change counter %d, want %d", seq, chs[0].Counter)
	}
	if st, _ := db.SyncState(); st != nil {
		t.Errorf("state before any save: %q", st)
	}
	if err := db.PutSyncState([]byte(`{"x":1}`)); err != nil {
		t.Fatal(err)
	}
	if st, _ := db.SyncState(); string(st) != `{"x":1}` {
		t.Errorf("state %q", st)
	}
}

package storage

import (
	"testing"
	"time"
)

// States and notifications commit together and survive a reopen; the
// outbox keeps its order; updates and deletes touch one entry.
func TestAlertStateAndOutbox(t *testing.T) {
	path := t.TempDir() + "/f.db"
	db, err := Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	seqs, err := db.CommitAlerts(AlertChange{
		Put:     map[string][]byte{"alert\x00r\x00k": []byte(`{"state":"firing"}`), "snooze\x00r": []byte(`{}`)},
		Enqueue: [][]byte{[]byte(`one`), []byte(`two`), []byte(`three`)},
	})
	if err != nil || len(seqs) != 3 || !(seqs[0] < seqs[1] && seqs[1] < seqs[2]) {
		t.Fatalf("commit: %v %v", seqs, err)
	}
	db.Close()
	db, err = Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	states, err := db.AlertStates()
	if err != nil || len(states) != 2 || string(states["alert\x00r\x00k"]) != `{"state":"firing"}` {
		t.Fatalf("states %q %v", states, err)
	}
	if err := db.UpdateAlertDelivery(seqs[1], nil); err != nil {
		t.Fatal(err)
	}
	if err := db.UpdateAlertDelivery(seqs[0], []byte(`one again`)); err != nil {
		t.Fatal(err)
	}
	if err := db.UpdateAlertDelivery(seqs[1], []byte(`revived`)); err != nil { // gone: stays gone
		t.Fatal(err)
	}
	out, err := db.AlertOutbox()
	if err != nil || len(out) != 2 || string(out[0].Value) != "one again" || out[1].Seq != seqs[2] || string(out[1].Value) != "three" {
		t.Fatalf("outbox %+v %v", out, err)
	}
	if _, err := db.CommitAlerts(AlertChange{Delete: []string{"snooze\x00r"}}); err != nil {
		t.Fatal(err)
	}
	if states, _ := db.AlertStates(); len(states) != 1 {
		t.Errorf("after delete: %q", states)
	}
	if _, err := db.CommitAlerts(AlertChange{Put: map[string][]byte{"": []byte("x")}}); err == nil {
		t.Error("an empty id was accepted")
	}
}

// LedgerCalls reads what Ledger reads, for the fields it has.
func TestLedgerCallsMatchLedger(t *testing.T) {
	db := openTest(t, time.UTC)
	u := Usage{TS: 1_700_000_000_000, Source: SourceClaude, Agent: "a", User: "u", SessionID: "s", Provider: "p", Model: "m",
		Input: 1, Output: 2, CacheRead: 3, CacheWrite: 4, Cost: Cost{Total: 0.125}, CostSource: CostUnpriced, DedupeKey: "k"}
	if _, err := db.Apply(&Batch{Records: []Usage{u}}); err != nil {
		t.Fatal(err)
	}
	var got []LedgerCall
	if err := db.LedgerCalls(0, 2_000_000_000_000, func(c *LedgerCall) error { got = append(got, *c); return nil }); err != nil {
		t.Fatal(err)
	}
	want := LedgerCall{TS: u.TS, Source: "claude", Agent: "a", User: "u", Provider: "p", Model: "m", SessionID: "s",
		Input: 1, Output: 2, CacheRead: 3, CacheWrite: 4, CostNanos: 125_000_000, Unpriced: true}
	if len(got) != 1 || got[0] != want {
		t.Errorf("got %+v\nwant %+v", got, want)
	}
	seq, err := db.LedgerSequence()
	if err != nil || seq != 1 {
		t.Errorf("sequence %d %v", seq, err)
	}
	ss, err := db.SessionsByKey([]SessionKey{{"claude", "s"}, {"claude", "missing"}})
	if err != nil || len(ss) != 1 || ss[0].Agent != "a" {
		t.Errorf("sessions %+v %v", ss, err)
	}
}

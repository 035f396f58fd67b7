package storage

import (
	"bytes"

	"context"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"
)

// A price that changes after the fact reprices the ledger and its rollups
// in chunks; a reprice stopped half-way resumes; the result equals a
// rebuild from the repriced ledger, byte for byte, and a transcript's own
// cost survives an override that is added and taken away again.
func TestReprice(t *testing.T) {
	db, err := Open(filepath.Join(t.TempDir(), FileName), Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	// Version 1 of the prices: model "new" is unknown; "old" costs $1 a token.
	v1 := func(u *Usage) {
		u.Recorded = nil
		switch {
		case u.Model == "old":
			u.Cost, u.CostSource = Cost{Total: float64(u.Input), Input: float64(u.Input)}, CostTable
		case u.Cost.Total > 0:
			u.CostSource = CostTranscript
		default:
			u.Cost, u.CostSource = Cost{}, CostUnpriced
		}
	}
	// Version 2: an override prices "new" at $2 a token, over the transcript.
	v2 := func(u *Usage) {
		if u.Model == "new" {
			if u.Cost.Total > 0 {
				c := u.Cost
				u.Recorded = &c
			}
			u.Cost, u.CostSource = Cost{Total: 2 * float64(u.Input), Input: 2 * float64(u.Input)}, CostOverride
			return
		}
		v1(u)
	}
	const n = 12_000 // more than two chunks
	b := &Batch{}
	for i := range n {
		u := Usage{TS: int64(1_780_000_000_000 + i*60_000), Source: SourceOpenClaw, Agent: "a", SessionID: fmt.Sprint("s", i%7),
			Provider: "p", Model: []string{"old", "new", "new"}[i%3], Input: 1, DedupeKey: fmt.Sprint("k", i)}
		if i%6 == 1 {
			u.Cost.Total = 0.5 // a "new" call whose transcript carried a cost
		}
		v1(&u)
		b.Records = append(b.Records, u)
	}
	if _, err := db.Apply(b); err != nil {
		t.Fatal(err)
	}
	if err := db.SetPricingFingerprint("v1"); err != nil {
		t.Fatal(err)
	}
	cost := func() int64 {
		rows, err := db.DailyRows(-1<<30, 1<<30)
		if err != nil {
			t.Fatal(err)
		}
		var c Totals
		for _, r := range rows {
			c.Add(r.Totals)
		}
		return c.CostNanos
	}
	// n/3 old at $1, n/6 new with a transcript cost of $0.5, n/6 new unpriced.
	if got, want := cost(), Nanos(float64(n/3)+0.5*float64(n/6)); got != want {
		t.Fatalf("v1 cost %d, want %d", got, want)
	}

	// Stopped after the first chunk: the first 5,000 records are repriced, and
	// the rollups say exactly that.
	ctx, cancel := context.WithCancel(context.Background())
	calls := 0
	_, err = db.Reprice(ctx, "v2", time.Now(), func(u *Usage) {
		if calls++; calls == repriceChunk {
			cancel()
		}
		v2(u)
	})
	if err == nil {
		t.Fatal("a cancelled reprice returned no error")
	}
	if fp, _ := db.PricingFingerprint(); fp != "v1" {
		t.Errorf("fingerprint %q after a partial reprice, want v1 until it ends", fp)
	}
	res, err := db.Reprice(context.Background(), "v2", time.Now(), v2)
	if err != nil {
		t.Fatal(err)
	}
	if res.Records != n || res.Changed != 2*n/3 {
		t.Errorf("reprice %+v, want %d records seen, %d changed", res, n, 2*n/3)
	}
	if got, want := cost(), Nanos(float64(n/3)+2*float64(2*n/3)); got != want {
		t.Errorf("v2 cost %d, want %d", got, want)
	}
	if fp, _ := db.PricingFingerprint(); fp != "v2" {
		t.Errorf("fingerprint %q, want v2", fp)
	}
	if last, err := db.LastReprice(); err != nil || last == nil || last.Changed != 2*n/3 || len(last.Models) != 2 {
		t.Errorf("last reprice %+v %v, want the change by model and source", last, err)
	}
	// The same prices again: nothing to do.
	if res, err := db.Reprice(context.Background(), "v2", time.Now(), v2); err != nil || res.Records != 0 {
		t.Errorf("a second reprice to the same prices: %+v %v", res, err)
	}
	// Incremental rows equal a rebuild from the repriced ledger.
	daily, _ := db.BucketBytes("daily")
	sessions, _ := db.BucketBytes("sessions")
	if err := db.RebuildRollups(); err != nil {
		t.Fatal(err)
	}
	daily2, _ := db.BucketBytes("daily")
	sessions2, _ := db.BucketBytes("sessions")
	if fmt.Sprint(daily) != fmt.Sprint(daily2) || fmt.Sprint(sessions) != fmt.Sprint(sessions2) {
		t.Error("repriced rollups differ from a rebuild of the repriced ledger")
	}
	// The override goes away: the transcripts' own costs come back.
	if _, err := db.Reprice(context.Background(), "v1", time.Now(), v1); err != nil {
		t.Fatal(err)
	}
	if got, want := cost(), Nanos(float64(n/3)+0.5*float64(n/6)); got != want {
		t.Errorf("back to v1: cost %d, want %d", got, want)
	}
	if err := db.Check(); err != nil {
		t.Error(err)
	}
}

// A schema 1 file deleted the dedupe keys of the records it pruned: the
// upgrade to 2 refuses calls before its last prune (they could count twice)
// and keeps everything else; version 1 rollup rows still read.
func TestUpgradeFromSchema1(t *testing.T) {
	path := filepath.Join(t.TempDir(), FileName)
	db, err := Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.Apply(&Batch{Records: []Usage{{TS: 5000, Source: SourceOpenClaw, Agent: "a", Provider: "p", Model: "m", Input: 7, DedupeKey: "k1"}}}); err != nil {
		t.Fatal(err)
	}
	// Make it a schema 1 file: version 1, a prune at ts 1000 that dropped
	// keys, and its daily row in the 12-field encoding.
	err = db.bolt.Update(func(tx *bolt.Tx) error {
		meta := tx.Bucket(bucketMeta)
		meta.Put(metaSchemaVersion, encodeUint(1))
		meta.Put(metaPrunedBefore, encodeUint(1000))
		c := tx.Bucket(bucketDaily).Cursor()
		k, v := c.First()
		t, err := decodeTotals(v)
		if err != nil {
			return err
		}
		return tx.Bucket(bucketDaily).Put(bytes.Clone(k), fixedTotals(1, t))
	})
	if err != nil {
		t.Fatal(err)
	}
	db.Close()
	// A read-only open (a report with no daemon) reads the old file as it is.
	ro, err := Open(path, Options{ReadOnly: true})
	if err != nil {
		t.Fatalf("read-only open of a schema 1 file: %v", err)
	}
	if rows, err := ro.DailyRows(-1<<30, 1<<30); err != nil || len(rows) != 1 || rows[0].Input != 7 {
		t.Errorf("schema 1 daily rows: %+v %v", rows, err)
	}
	ro.Close()
	db, err = Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	res, err := db.Apply(&Batch{Records: []Usage{
		{TS: 500, Source: SourceOpenClaw, Agent: "a", Provider: "p", Model: "m", Input: 1, DedupeKey: "old"},
		{TS: 6000, Source: SourceOpenClaw, Agent: "a", Provider: "p", Model: "m", Input: 1, DedupeKey: "new"},
	}})
	if err != nil || res.TooOld != 1 || res.Added != 1 {
		t.Errorf("after the upgrade: %+v %v; want the call before the old prune refused, the other added", res, err)
	}
	if sk, _ := db.Skips(); sk.TooOld != 1 {
		t.Errorf("too_old not counted: %+v", sk)
	}
}

package storage

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"sort"
	"time"

	bolt "go.etcd.io/bbolt"
)

// Prices change after the fact: a user adds an override for a model the
// table did not know, the table is updated, a modifier is fixed. The
// ledger is then repriced, so history follows: every stored record is
// priced again the way ingest would price it now, and the rollups change
// with it. Records keep what the transcript recorded (Usage.Recorded),
// so a transcript's own cost comes back when an override is removed.
//
// A reprice runs in chunks of repriceChunk records, one transaction each,
// and records its progress in the same transaction: a kill at any instant
// resumes where it stopped, never repricing a record twice against the
// rollups. Records older than the ledger's retention are gone; their
// rollup rows keep the prices they were built with.

// repriceChunk records are repriced per transaction.
const repriceChunk = 5000

// RepriceResult says what a reprice changed.
type RepriceResult struct {
	At      time.Time `json:"at"`
	From    string    `json:"from"` // pricing fingerprint before
	To      string    `json:"to"`   // and after
	Records int       `json:"records"`
	Changed int       `json:"changed"`
	// CostBefore and CostAfter are the changed records' cost, in USD.
	CostBefore float64 `json:"cost_before_usd"`
	CostAfter  float64 `json:"cost_after_usd"`
	// Models lists what changed per "provider/model", largest change first.
	Models []RepriceModel `json:"models"`
}

// RepriceModel is one model's share of a reprice.
type RepriceModel struct {
	Model      string  `json:"model"`
	Calls      int     `json:"calls"`
	SourceFrom string  `json:"cost_source_from"` // e.g. "unpriced"
	SourceTo   string  `json:"cost_source_to"`   // e.g. "override"
	CostBefore float64 `json:"cost_before_usd"`
	CostAfter  float64 `json:"cost_after_usd"`
}

// repriceProgress is meta "reprice_progress" while a reprice runs.
type repriceProgress struct {
	To     string        `json:"to"`
	After  []byte        `json:"after"` // the last ledger key repriced
	Result RepriceResult `json:"result"`
}

// PricingFingerprint is the fingerprint of the prices the ledger was
// priced with ("" for a file that never recorded one).
func (db *DB) PricingFingerprint() (string, error) {
	var fp string
	err := db.bolt.View(func(tx *bolt.Tx) error {
		fp = string(tx.Bucket(bucketMeta).Get(metaPricing))
		return nil
	})
	return fp, err
}

// SetPricingFingerprint records the fingerprint of the prices a new file's
// records are priced with (nothing to reprice).
func (db *DB) SetPricingFingerprint(fp string) error {
	return db.bolt.Update(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketMeta).Put(metaPricing, []byte(fp))
	})
}

// LastReprice returns the result of the last finished reprice, if any.
func (db *DB) LastReprice() (*RepriceResult, error) {
	var r *RepriceResult
	err := db.bolt.View(func(tx *bolt.Tx) error {
		v := tx.Bucket(bucketMeta).Get(metaLastReprice)
		if v == nil {
			return nil
		}
		r = &RepriceResult{}
		return json.Unmarshal(v, r)
	})
	return r, err
}

// Reprice prices every ledger record again with price (which must set
// Cost, CostSource and Corrected from the tokens, the modifier and
// RecordedCost, as ingest does) and moves the rollups with the changes,
// then records fp as the ledger's pricing fingerprint. It returns at once
// when fp is already the ledger's. Cancelled, it stops between chunks; the
// next call resumes.
func (db *DB) Reprice(ctx context.Context, fp string, now time.Time, price func(*Usage)) (RepriceResult, error) {
	for {
		if err := ctx.Err(); err != nil {
			return RepriceResult{}, fmt.Errorf("reprice ledger: %w (the next start goes on where it stopped)", err)
		}
		done, res, err := db.repriceChunk(fp, now, price)
		if err != nil || done {
			return res, err
		}
	}
}

func (db *DB) repriceChunk(fp string, now time.Time, price func(*Usage)) (done bool, res RepriceResult, err error) {
	err = db.bolt.Update(func(tx *bolt.Tx) error {
		meta := tx.Bucket(bucketMeta)
		from := string(meta.Get(metaPricing))
		if from == fp {
			done = true
			return nil
		}
		var prog repriceProgress
		if v := meta.Get(metaRepriceProgress); v != nil {
			if err := json.Unmarshal(v, &prog); err != nil {
				return fmt.Errorf("reprice progress: %w", err)
			}
		}
		if prog.To != fp {
			// A new target (or the first run): start over. Records already
			// repriced towards another target are priced again from what
			// they hold, which is the same whatever they were priced at.
			prog = repriceProgress{To: fp, Result: RepriceResult{From: from, To: fp}}
		}
		w := db.writer(tx)
		models := map[string]*RepriceModel{}
		for _, m := range prog.Result.Models {
			models[m.Model+"\x00"+m.SourceFrom+"\x00"+m.SourceTo] = &m
		}
		c := w.ledger.Cursor()
		k, v := c.First()
		if prog.After != nil {
			k, v = c.Seek(prog.After)
			if k != nil && bytes.Equal(k, prog.After) {
				k, v = c.Next()
			}
		}
		type change struct {
			key      []byte
			old, new Usage
		}
		var changes []change
		n := 0
		for ; k != nil && n < repriceChunk; k, v = c.Next() {
			n++
			prog.After = bytes.Clone(k)
			var u Usage
			if err := decodeUsage(v, &u); err != nil {
				return fmt.Errorf("ledger row %x: %w", k, err)
			}
			prog.Result.Records++
			nu := u
			nu.Reprice()
			price(&nu)
			if nu.Cost == u.Cost && nu.CostSource == u.CostSource && nu.Corrected == u.Corrected {
				continue
			}
			changes = append(changes, change{prog.After, u, nu})
		}
		// Writes after the walk: a cursor must not run over rows it changes.
		for _, ch := range changes {
			if err := w.applyRollups(&ch.old, -1); err != nil {
				return err
			}
			raw, err := w.usageRow(&ch.new)
			if err != nil {
				return err
			}
			if err := w.ledger.Put(ch.key, raw); err != nil {
				return err
			}
			if err := w.applyRollups(&ch.new, +1); err != nil {
				return err
			}
			r := &prog.Result
			r.Changed++
			r.CostBefore += ch.old.Cost.Total
			r.CostAfter += ch.new.Cost.Total
			mk := ch.new.Provider + "/" + ch.new.Model + "\x00" + ch.old.CostSource + "\x00" + ch.new.CostSource
			m := models[mk]
			if m == nil {
				m = &RepriceModel{Model: ch.new.Provider + "/" + ch.new.Model, SourceFrom: ch.old.CostSource, SourceTo: ch.new.CostSource}
				models[mk] = m
			}
			m.Calls++
			m.CostBefore += ch.old.Cost.Total
			m.CostAfter += ch.new.Cost.Total
		}
		if err := w.flush(); err != nil {
			return err
		}
		prog.Result.Models = prog.Result.Models[:0]
		for _, m := range models {
			prog.Result.Models = append(prog.Result.Models, *m)
		}
		sort.Slice(prog.Result.Models, func(i, j int) bool {
			a, b := prog.Result.Models[i], prog.Result.Models[j]
			da, dbb := a.CostAfter-a.CostBefore, b.CostAfter-b.CostBefore
			if da*da != dbb*dbb {
				return da*da > dbb*dbb
			}
			return a.Model < b.Model
		})
		if k != nil {
			raw, err := json.Marshal(prog)
			if err != nil {
				return err
			}
			return meta.Put(metaRepriceProgress, raw)
		}
		// The whole ledger is priced at fp.
		done = true
		res = prog.Result
		res.At = now.UTC()
		if err := meta.Delete(metaRepriceProgress); err != nil {
			return err
		}
		if err := meta.Put(metaPricing, []byte(fp)); err != nil {
			return err
		}
		if res.Changed == 0 {
			return nil // nothing to say: keep the last reprice that changed something
		}
		raw, err := json.Marshal(res)
		if err != nil {
			return err
		}
		return meta.Put(metaLastReprice, raw)
	})
	if err != nil {
		return false, RepriceResult{}, fmt.Errorf("reprice ledger: %w", err)
	}
	return done, res, nil
}

// Reprice resets what pricing set, to price a stored record again from
// what its transcript recorded: its own cost (Recorded, or the cost itself
// when the transcript's cost was used), and no pricing correction (a token
// correction stays: the tokens stay corrected).
func (u *Usage) Reprice() {
	switch {
	case u.Recorded != nil:
		u.Cost, u.Recorded = *u.Recorded, nil
	case u.CostSource != CostTranscript:
		u.Cost = Cost{}
	}
	if u.Corrected == CorrectedImplausibleCost {
		u.Corrected = ""
	}
}

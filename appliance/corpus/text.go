package corpus

import (
	"encoding/base64"
	"math/rand/v2"
	"strings"
)

// gen is the corpus's single source of randomness plus a pool of text that
// message bodies are cut from. Cutting slices from a pool instead of
// composing every body word by word keeps generation at hundreds of MB/s.
type gen struct {
	rng  *rand.Rand
	pool string
}

// poolSize is large enough that the biggest tool output (~160 KB) is a
// small part of it, so outputs differ.
const poolSize = 1 << 20

func newGen(seed uint64) *gen {
	// The second PCG word is a fixed odd constant: seeds that differ in one
	// bit still give unrelated streams.
	g := &gen{rng: rand.New(rand.NewPCG(seed, 0x9e3779b97f4a7c15))}
	g.pool = g.buildPool(poolSize)
	return g
}

var words = strings.Fields(`the a of to and in is for on that with as by this be are from it at
	or an was not have will can session agent model token cache request response file line error
	value config server client user channel group message reply tool result read write update build
	test deploy queue worker retry timeout limit budget report daily weekly invoice calendar meeting
	note draft summary invoice customer order shipment ticket incident alert metric latency disk
	memory cpu backup restore migrate schema index query table column row commit branch merge`)

// Fragments that make tool output look like what agents read: code with
// quotes and backslashes, logs with ANSI colour escapes (control bytes a
// JSON writer must escape), and non-ASCII text (multi-byte UTF-8, one
// character outside the BMP) that a reader must not split.
var fragments = []string{
	"\tif err := s.flush(ctx); err != nil {\n\t\treturn fmt.Errorf(\"flush %s: %w\", s.path, err)\n\t}\n",
	"const re = /^[a-z0-9][a-z0-9._-]{0,127}$/i; // \"safe\" id\n",
	"C:\\Users\\ops\\AppData\\Local\\openclaw\\logs\\gateway.log\n",
	"\x1b[32m✓\x1b[0m 42 passed \x1b[2m(1.8s)\x1b[0m\n",
	"\x1b[31mFAIL\x1b[0m src/app.test.ts > renders café menu\n",
	"{\"id\": 4821, \"status\": \"ok\", \"tags\": [\"a\", \"b\"], \"ratio\": 0.125}\n",
	"Résumé: naïve café → über straße; 日本語のテキスト; 🙂 done.\n",
	"| col | value |\n|-----|-------|\n| p95 | 182ms |\n",
	"2026-04-10T08:00:00.123Z INFO worker=3 msg=\"job done\" elapsed=12ms\n",
	"    at Object.<anonymous> (/srv/app/dist/index.js:12:7)\n",
	"<div class=\"row\">Tom & Jerry &lt;3</div>\n",
}

// buildPool makes n bytes of mixed prose, code and logs.
func (g *gen) buildPool(n int) string {
	var b strings.Builder
	b.Grow(n + 256)
	for b.Len() < n {
		if g.rng.IntN(4) == 0 {
			b.WriteString(fragments[g.rng.IntN(len(fragments))])
			continue
		}
		k := 6 + g.rng.IntN(18)
		for i := 0; i < k; i++ {
			w := words[g.rng.IntN(len(words))]
			if i == 0 {
				w = strings.ToUpper(w[:1]) + w[1:]
			}
			b.WriteString(w)
			if i < k-1 {
				b.WriteByte(' ')
			}
		}
		if g.rng.IntN(3) == 0 {
			b.WriteString(".\n")
		} else {
			b.WriteString(". ")
		}
	}
	return b.String()
}

// text returns about n bytes of pool text (never splitting a character).
func (g *gen) text(n int) string {
	if n <= 0 {
		return ""
	}
	if n >= len(g.pool) {
		return strings.Repeat(g.pool, n/len(g.pool)) + g.text(n%len(g.pool))
	}
	start := g.rng.IntN(len(g.pool) - n)
	for start > 0 && g.pool[start]&0xC0 == 0x80 {
		start--
	}
	return clipRunes(g.pool[start:], n)
}

// between returns a uniform int in [lo, hi].
func (g *gen) between(lo, hi int) int { return lo + g.rng.IntN(hi-lo+1) }

func (g *gen) chance(p float64) bool { return p > 0 && g.rng.Float64() < p }

// size draws a tool output size: mostly small, with a long tail of 30 to
// 160 KB outputs (file reads, web pages), capped by limit.
func (g *gen) size(limit int) int {
	var n int
	switch r := g.rng.IntN(100); {
	case r < 55:
		n = g.between(200, 4<<10)
	case r < 88:
		n = g.between(4<<10, 30<<10)
	default:
		n = g.between(30<<10, 160<<10)
	}
	return min(n, max(limit, 512))
}

const hexDigits = "0123456789abcdef"

func (g *gen) hex(n int) string {
	b := make([]byte, n)
	for i := range b {
		b[i] = hexDigits[g.rng.IntN(16)]
	}
	return string(b)
}

const alnumDigits = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"

func (g *gen) alnum(n int) string {
	b := make([]byte, n)
	for i := range b {
		b[i] = alnumDigits[g.rng.IntN(len(alnumDigits))]
	}
	return string(b)
}

func (g *gen) digits(n int) string {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte('0' + g.rng.IntN(10))
	}
	if b[0] == '0' {
		b[0] = '1'
	}
	return string(b)
}

// uuid returns a random version-4 UUID, like crypto.randomUUID().
func (g *gen) uuid() string {
	var u [16]byte
	for i := 0; i < 16; i += 8 {
		v := g.rng.Uint64()
		for j := 0; j < 8; j++ {
			u[i+j] = byte(v >> (8 * j))
		}
	}
	u[6] = u[6]&0x0f | 0x40
	u[8] = u[8]&0x3f | 0x80
	const h = hexDigits
	b := make([]byte, 0, 36)
	for i, c := range u {
		if i == 4 || i == 6 || i == 8 || i == 10 {
			b = append(b, '-')
		}
		b = append(b, h[c>>4], h[c&0xf])
	}
	return string(b)
}

// blob returns base64 of n random bytes starting with magic, for images
// and thinking signatures.
func (g *gen) blob(magic string, n int) string {
	raw := make([]byte, n)
	copy(raw, magic)
	for i := len(magic); i < n; i += 8 {
		v := g.rng.Uint64()
		for j := 0; j < 8 && i+j < n; j++ {
			raw[i+j] = byte(v >> (8 * j))
		}
	}
	return base64.StdEncoding.EncodeToString(raw)
}

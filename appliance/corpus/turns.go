package corpus

import (
	"time"
)

var toolNames = []string{"read", "exec", "web_search", "web_fetch", "memory_search", "message", "browser", "edit"}

// turn is one inbound message and the model loop answering it: zero to
// three tool rounds, then a final reply.
func (s *session) turn() {
	s.turns = append(s.turns, len(s.entries))
	if len(s.turns) == 1 {
		s.tick(200, 3000)
	} else {
		s.tick(20_000, 15*60_000)
	}
	s.user()
	rounds := 0
	switch r := s.g.IntN(10); {
	case r >= 9:
		rounds = 3
	case r >= 7:
		rounds = 2
	case r >= 4:
		rounds = 1
	}
	for i := 0; i <= rounds; i++ {
		if s.g.chance(s.o.AbortRate) {
			s.aborted()
		}
		final := i == rounds
		calls := s.assistant(final)
		for _, tc := range calls {
			s.toolResult(tc)
		}
	}
	if s.k.kind != kindCron && s.g.chance(s.o.MirrorRate) {
		s.mirror()
	}
}

func (s *session) user() {
	body := s.g.text(s.g.between(20, 600))
	text := s.k.userText(s.g, s.a, s.t, body)
	var image string
	if s.imageOK && s.g.chance(s.o.ImageRate) {
		// ~150 KB of bytes, ~200 KB of base64; a JPEG header so it looks
		// like the phone photos users send.
		image = s.g.blob("\xff\xd8\xff\xe0\x00\x10JFIF", s.g.between(140<<10, 160<<10))
	}
	ts := s.t
	s.push("message", ts, true, nil, len(text)+len(image), func(b []byte) []byte {
		b = append(b, `{"role":"user","content":[{"type":"text","text":`...)
		b = appendStr(b, text)
		b = append(b, '}')
		if image != "" {
			b = append(b, `,{"type":"image","data":"`...)
			b = append(b, image...)
			b = append(b, `","mimeType":"image/jpeg"}`...)
		}
		b = append(b, `],"timestamp":`...)
		b = appendInt(b, ts.UnixMilli()-int64(s.g.between(3, 40)))
		return append(b, '}')
	})
	s.pending += int64(len(text) / 4)
	if image != "" {
		s.pending += 1600 // what providers bill for a downscaled photo
	}
}

type toolCall struct{ id, name string }

// assistant writes one model call and returns the tool calls it made.
func (s *session) assistant(final bool) []toolCall {
	m := s.g
	var thinking, sig string
	switch s.a.thinking {
	case "low":
		thinking = m.text(m.between(200, 2000))
	case "medium":
		thinking = m.text(m.between(1000, 6000))
	case "high":
		thinking = m.text(m.between(2000, 12000))
	}
	if thinking != "" {
		sig = m.blob("", m.between(200, 900))
	}
	var text string
	if final {
		text = m.text(m.between(50, 1500))
		s.lastText = text
	} else if m.chance(0.5) {
		text = m.text(m.between(20, 200))
	}
	var calls []toolCall
	var args []string
	if !final {
		for range m.between(1, 3) {
			tc := toolCall{name: toolNames[m.IntN(len(toolNames))]}
			if s.m.provider == "anthropic" {
				tc.id = "toolu_01" + m.alnum(22)
			} else {
				tc.id = "call_" + m.alnum(24) + "|fc_" + m.hex(48)
			}
			calls = append(calls, tc)
			args = append(args, m.text(m.between(10, 300)))
		}
	}
	outBytes := len(thinking) + len(text)
	for _, a := range args {
		outBytes += len(a) + 40
	}
	out := int64(outBytes/4 + m.between(1, 40))

	// message.timestamp is taken when the request starts; the entry is
	// written when the response ends. Both must fall on one UTC date, so
	// that per-day totals do not depend on which one an ingester uses: a
	// call spanning midnight is moved to start at midnight.
	msgTS := s.t
	ts := msgTS.Add(time.Duration(1500+out*12+int64(m.between(0, 3000))) * time.Millisecond)
	if day(msgTS) != day(ts) {
		msgTS = ts.Truncate(24 * time.Hour)
	}
	c := &call{provider: s.m.provider, model: s.m.id, msgTS: msgTS.UnixMilli()}
	c.u = s.usage(out, msgTS)
	if !s.zeroCost {
		c.cost = s.m.price.cost(c.u)
	}
	if !s.legacy {
		if s.m.provider == "anthropic" {
			c.responseID = "msg_01" + m.alnum(22)
		} else {
			c.responseID = "resp_" + m.hex(48)
		}
	}
	stop := "stop"
	if !final {
		stop = "toolUse"
	}
	s.last = c
	md := s.m
	s.push("message", ts, true, c, outBytes+len(sig)+400, func(b []byte) []byte {
		b = append(b, `{"role":"assistant","content":[`...)
		sep := false
		comma := func() {
			if sep {
				b = append(b, ',')
			}
			sep = true
		}
		if thinking != "" {
			comma()
			b = append(b, `{"type":"thinking","thinking":`...)
			b = appendStr(b, thinking)
			b = append(b, `,"thinkingSignature":"`...)
			b = append(b, sig...)
			b = append(b, `"}`...)
		}
		if text != "" {
			comma()
			b = append(b, `{"type":"text","text":`...)
			b = appendStr(b, text)
			b = append(b, '}')
		}
		for i, tc := range calls {
			comma()
			b = append(b, `{"type":"toolCall","id":`...)
			b = appendStr(b, tc.id)
			b = append(b, `,"name":`...)
			b = appendStr(b, tc.name)
			b = append(b, `,"arguments":{"input":`...)
			b = appendStr(b, args[i])
			b = append(b, `}}`...)
		}
		b = append(b, ']')
		return appendCallTail(b, md.api, c, stop, "")
	})
	s.pending += out
	return calls
}

// appendCallTail writes the fields after content, in pi's order.
func appendCallTail(b []byte, api string, c *call, stop, errMsg string) []byte {
	b = append(b, `,"api":`...)
	b = appendStr(b, api)
	b = append(b, `,"provider":`...)
	b = appendStr(b, c.provider)
	b = append(b, `,"model":`...)
	b = appendStr(b, c.model)
	u := c.u
	b = append(b, `,"usage":{"input":`...)
	b = appendInt(b, u.input)
	b = append(b, `,"output":`...)
	b = appendInt(b, u.output)
	b = append(b, `,"cacheRead":`...)
	b = appendInt(b, u.cacheRead)
	b = append(b, `,"cacheWrite":`...)
	b = appendInt(b, u.cacheWrite)
	b = append(b, `,"totalTokens":`...)
	b = appendInt(b, u.input+u.output+u.cacheRead+u.cacheWrite)
	b = append(b, `,"cost":{"input":`...)
	b = appendNum(b, c.cost[0])
	b = append(b, `,"output":`...)
	b = appendNum(b, c.cost[1])
	b = append(b, `,"cacheRead":`...)
	b = appendNum(b, c.cost[2])
	b = append(b, `,"cacheWrite":`...)
	b = appendNum(b, c.cost[3])
	b = append(b, `,"total":`...)
	b = appendNum(b, c.cost[4])
	b = append(b, `}},"stopReason":`...)
	b = appendStr(b, stop)
	b = append(b, `,"timestamp":`...)
	b = appendInt(b, c.msgTS)
	if c.responseID != "" {
		b = append(b, `,"responseId":`...)
		b = appendStr(b, c.responseID)
	}
	if errMsg != "" {
		b = append(b, `,"errorMessage":`...)
		b = appendStr(b, errMsg)
	}
	return append(b, '}')
}

// usage turns the cache model into the four counts. Anthropic reports
// uncached input separately from cache reads and writes; OpenAI caches
// prefixes in 128-token steps and reports no cache writes. A cache older
// than an hour (or reset by compaction) is cold.
func (s *session) usage(out int64, at time.Time) usage {
	cold := s.lastCall.IsZero() || at.Sub(s.lastCall) > time.Hour
	ctx := s.cached + s.pending
	var u usage
	if s.m.provider == "anthropic" {
		u.input = int64(s.g.between(1, 12))
		if cold {
			u.cacheWrite = ctx
		} else {
			u.cacheRead, u.cacheWrite = s.cached, s.pending
		}
	} else {
		if !cold {
			u.cacheRead = s.cached / 128 * 128
		}
		u.input = ctx - u.cacheRead
	}
	u.output = out
	s.cached = ctx + u.input
	if s.m.provider != "anthropic" {
		s.cached = ctx
	}
	s.pending = 0
	s.lastCall = at
	return u
}

func (s *session) toolResult(tc toolCall) {
	out := s.g.text(s.g.size(s.maxTool))
	isErr := s.g.chance(0.03)
	ts := s.tick(50, 3000)
	s.push("message", ts, true, nil, len(out), func(b []byte) []byte {
		b = append(b, `{"role":"toolResult","toolCallId":`...)
		b = appendStr(b, tc.id)
		b = append(b, `,"toolName":`...)
		b = appendStr(b, tc.name)
		b = append(b, `,"content":[{"type":"text","text":`...)
		b = appendStr(b, out)
		b = append(b, `}],"isError":`...)
		if isErr {
			b = append(b, "true"...)
		} else {
			b = append(b, "false"...)
		}
		b = append(b, `,"timestamp":`...)
		b = appendInt(b, ts.UnixMilli())
		return append(b, '}')
	})
	s.pending += int64(len(out) / 4)
}

// aborted writes a call the user interrupted: empty content, all-zero
// usage, no responseId (the legacy fixture's shape).
func (s *session) aborted() {
	c := &call{provider: s.m.provider, model: s.m.id, msgTS: s.t.UnixMilli()}
	api := s.m.api
	s.push("message", s.tick(200, 3000), true, c, 0, func(b []byte) []byte {
		b = append(b, `{"role":"assistant","content":[]`...)
		return appendCallTail(b, api, c, "aborted", "Request was aborted")
	})
}

// mirror writes the delivery-mirror copy of the last reply that OpenClaw
// appends when it delivers to another channel: provider openclaw, zero usage.
func (s *session) mirror() {
	c := &call{provider: "openclaw", model: "delivery-mirror", msgTS: s.t.UnixMilli()}
	text := s.lastText
	s.push("message", s.tick(20, 400), true, c, len(text), func(b []byte) []byte {
		b = append(b, `{"role":"assistant","content":[{"type":"text","text":`...)
		b = appendStr(b, text)
		b = append(b, `}]`...)
		return appendCallTail(b, "openai-responses", c, "stop", "")
	})
}

// day is the UTC date an ingester buckets a call under.
func day(t time.Time) string { return t.UTC().Format("2006-01-02") }

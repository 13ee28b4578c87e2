// Package fakeapi is a scripted Anthropic Messages API server for tests that
// drive the real Claude Code binary on loopback (ANTHROPIC_BASE_URL). A script
// is a list of turns; each turn is either a tool call the "model" makes or a
// final text answer. The server streams each turn as the real API does
// (server-sent events), records every request, and answers the other endpoints
// the CLI calls at startup with minimal valid JSON.
//
// The turn to play is derived from the request itself (the number of
// assistant messages already in the conversation), not from a counter, so
// retries and side requests (title generation, quota probes) cannot make the
// script skip a step.
package fakeapi

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"
)

// Turn is one scripted model response. Exactly one of Tool or Text is set.
type Turn struct {
	// Tool is the name of the tool the model calls ("Bash", "Read", ...).
	Tool string `json:"tool,omitempty"`
	// Input is the tool's input object, e.g. {"command": "ls"}.
	Input map[string]any `json:"input,omitempty"`
	// ID is the tool_use id; generated ("toolu_fake_<script>_<n>") when empty.
	ID string `json:"id,omitempty"`
	// Text is a final answer: the turn ends with stop_reason end_turn.
	Text string `json:"text,omitempty"`
}

// Script is the conversation the server plays. When Match is non-empty the
// script is used only for conversations whose first user message contains
// it, so one server can drive several sessions (a nested agent, for one).
type Script struct {
	Name  string `json:"name"`
	Match string `json:"match,omitempty"`
	Turns []Turn `json:"turns"`
}

// Request is one recorded HTTP request.
type Request struct {
	Time   time.Time
	Method string
	Path   string
	// Body is the raw request body (bounded to 4 MiB).
	Body []byte
	// Script and Turn name the scripted turn served, Turn -1 when the
	// request was not a scripted conversation step.
	Script string
	Turn   int
	// ToolResults are the tool_result blocks of the last user message.
	ToolResults []ToolResult
}

// ToolResult is a tool_result content block sent back by the client.
type ToolResult struct {
	ToolUseID string
	IsError   bool
	Content   string
}

// Server is a running fake API.
type Server struct {
	log     *slog.Logger
	scripts []Script
	ln      net.Listener
	srv     *http.Server

	mu       sync.Mutex
	requests []Request
	served   chan Request
}

const maxBody = 4 << 20

// Start listens on 127.0.0.1 (a free port) and serves scripts. It fails
// when a script is malformed, naming the script and turn.
func Start(scripts []Script, log *slog.Logger) (*Server, error) {
	if err := Validate(scripts); err != nil {
		return nil, err
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("fakeapi: listen: %w", err)
	}
	s := &Server{log: log, scripts: scripts, ln: ln, served: make(chan Request, 1024)}
	s.srv = &http.Server{Handler: s, ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = s.srv.Serve(ln) }()
	return s, nil
}

// Validate checks scripts: each turn is exactly one of tool or text.
func Validate(scripts []Script) error {
	if len(scripts) == 0 {
		return fmt.Errorf("fakeapi: no script")
	}
	for i, sc := range scripts {
		if len(sc.Turns) == 0 {
			return fmt.Errorf("fakeapi: script %d (%q) has no turns", i, sc.Name)
		}
		for j, t := range sc.Turns {
			if (t.Tool == "") == (t.Text == "") {
				return fmt.Errorf("fakeapi: script %q turn %d: exactly one of tool or text must be set", sc.Name, j)
			}
		}
		if sc.Turns[len(sc.Turns)-1].Text == "" {
			return fmt.Errorf("fakeapi: script %q: the last turn must be a text answer", sc.Name)
		}
	}
	return nil
}

// URL is the base URL to put in ANTHROPIC_BASE_URL.
func (s *Server) URL() string { return "http://" + s.ln.Addr().String() }

// Close stops the server.
func (s *Server) Close() error { return s.srv.Close() }

// Requests returns a copy of every request recorded so far.
func (s *Server) Requests() []Request {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Request(nil), s.requests...)
}

// Served delivers scripted conversation steps as they are served (a
// buffered channel; steps beyond its capacity are only in Requests).
func (s *Server) Served() <-chan Request { return s.served }

// ToolUseID is the id the server gives turn n of a script when the turn has
// none: deterministic so tests can assert it.
func ToolUseID(script string, n int) string {
	return fmt.Sprintf("toolu_fake_%s_%02d", script, n)
}

type message struct {
	Role    string          `json:"role"`
	Content json.RawMessage `json:"content"`
}

type block struct {
	Type      string          `json:"type"`
	Text      string          `json:"text"`
	ToolUseID string          `json:"tool_use_id"`
	IsError   bool            `json:"is_error"`
	Content   json.RawMessage `json:"content"`
}

type messagesRequest struct {
	Model    string          `json:"model"`
	Stream   bool            `json:"stream"`
	Messages []message       `json:"messages"`
	Tools    json.RawMessage `json:"tools"`
}

func blocks(raw json.RawMessage) []block {
	var s string
	if json.Unmarshal(raw, &s) == nil {
		return []block{{Type: "text", Text: s}}
	}
	var bs []block
	_ = json.Unmarshal(raw, &bs)
	return bs
}

func contentText(raw json.RawMessage) string {
	var sb strings.Builder
	for _, b := range blocks(raw) {
		if b.Type == "text" {
			sb.WriteString(b.Text)
		}
	}
	return sb.String()
}

// ServeHTTP implements http.Handler.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(io.LimitReader(r.Body, maxBody))
	rec := Request{Time: time.Now(), Method: r.Method, Path: r.URL.Path, Body: body, Turn: -1}
	defer func() {
		s.mu.Lock()
		s.requests = append(s.requests, rec)
		s.mu.Unlock()
		if rec.Turn >= 0 {
			select {
			case s.served <- rec:
			default:
			}
		}
	}()
	switch {
	case r.URL.Path == "/v1/messages/count_tokens":
		writeJSON(w, map[string]any{"input_tokens": 10})
	case r.URL.Path == "/v1/messages" && r.Method == http.MethodPost:
		s.messages(w, body, &rec)
	default:
		if s.log != nil {
			s.log.Debug("fakeapi: unscripted endpoint", "method", r.Method, "path", r.URL.Path)
		}
		writeJSON(w, map[string]any{})
	}
}

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(v)
}

func (s *Server) pick(req *messagesRequest) *Script {
	first := ""
	for _, m := range req.Messages {
		if m.Role == "user" {
			first = contentText(m.Content)
			break
		}
	}
	var fallback *Script
	for i := range s.scripts {
		sc := &s.scripts[i]
		if sc.Match == "" {
			if fallback == nil {
				fallback = sc
			}
			continue
		}
		if strings.Contains(first, sc.Match) {
			return sc
		}
	}
	return fallback
}

func (s *Server) messages(w http.ResponseWriter, body []byte, rec *Request) {
	var req messagesRequest
	if err := json.Unmarshal(body, &req); err != nil {
		http.Error(w, `{"type":"error","error":{"type":"invalid_request_error","message":"bad json"}}`, http.StatusBadRequest)
		return
	}
	if n := len(req.Messages); n > 0 && req.Messages[n-1].Role == "user" {
		for _, b := range blocks(req.Messages[n-1].Content) {
			if b.Type == "tool_result" {
				rec.ToolResults = append(rec.ToolResults, ToolResult{ToolUseID: b.ToolUseID, IsError: b.IsError, Content: resultText(b.Content)})
			}
		}
	}
	// Side requests (titles, topic detection, quota probes) carry no tools:
	// answer them with a short text so they never consume a scripted turn.
	sc := s.pick(&req)
	var t Turn
	if len(req.Tools) == 0 || string(req.Tools) == "null" || string(req.Tools) == "[]" || sc == nil {
		t = Turn{Text: "ok"}
	} else {
		n := 0
		for _, m := range req.Messages {
			if m.Role == "assistant" {
				n++
			}
		}
		if n >= len(sc.Turns) {
			n = len(sc.Turns) - 1
		}
		t = sc.Turns[n]
		if t.Tool != "" && t.ID == "" {
			t.ID = ToolUseID(sc.Name, n)
		}
		rec.Script, rec.Turn = sc.Name, n
	}
	model := req.Model
	if model == "" {
		model = "claude-fake"
	}
	if !req.Stream {
		writeJSON(w, message1(t, model))
		return
	}
	w.Header().Set("Content-Type", "text/event-stream")
	w.Header().Set("Cache-Control", "no-cache")
	var buf bytes.Buffer
	for _, ev := range stream(t, model) {
		b, _ := json.Marshal(ev)
		fmt.Fprintf(&buf, "event: %s\ndata: %s\n\n", ev["type"], b)
	}
	_, _ = w.Write(buf.Bytes())
}

func resultText(raw json.RawMessage) string {
	var s string
	if json.Unmarshal(raw, &s) == nil {
		return s
	}
	var sb strings.Builder
	for _, b := range blocks(raw) {
		sb.WriteString(b.Text)
	}
	return sb.String()
}

func usage() map[string]any {
	return map[string]any{"input_tokens": 10, "output_tokens": 1, "cache_creation_input_tokens": 0, "cache_read_input_tokens": 0}
}

func msgID(t Turn) string {
	if t.ID != "" {
		return "msg_" + t.ID
	}
	return "msg_fake_text"
}

func message1(t Turn, model string) map[string]any {
	var content []any
	stop := "end_turn"
	if t.Tool != "" {
		in := t.Input
		if in == nil {
			in = map[string]any{}
		}
		content = append(content, map[string]any{"type": "tool_use", "id": t.ID, "name": t.Tool, "input": in})
		stop = "tool_use"
	} else {
		content = append(content, map[string]any{"type": "text", "text": t.Text})
	}
	return map[string]any{
		"id": msgID(t), "type": "message", "role": "assistant", "model": model,
		"content": content, "stop_reason": stop, "stop_sequence": nil, "usage": usage(),
	}
}

func stream(t Turn, model string) []map[string]any {
	evs := []map[string]any{{
		"type": "message_start",
		"message": map[string]any{
			"id": msgID(t), "type": "message", "role": "assistant", "model": model,
			"content": []any{}, "stop_reason": nil, "stop_sequence": nil, "usage": usage(),
		},
	}}
	stop := "end_turn"
	if t.Tool != "" {
		in := t.Input
		if in == nil {
			in = map[string]any{}
		}
		js, _ := json.Marshal(in)
		evs = append(evs,
			map[string]any{"type": "content_block_start", "index": 0, "content_block": map[string]any{"type": "tool_use", "id": t.ID, "name": t.Tool, "input": map[string]any{}}},
			map[string]any{"type": "content_block_delta", "index": 0, "delta": map[string]any{"type": "input_json_delta", "partial_json": string(js)}},
			map[string]any{"type": "content_block_stop", "index": 0},
		)
		stop = "tool_use"
	} else {
		evs = append(evs,
			map[string]any{"type": "content_block_start", "index": 0, "content_block": map[string]any{"type": "text", "text": ""}},
			map[string]any{"type": "content_block_delta", "index": 0, "delta": map[string]any{"type": "text_delta", "text": t.Text}},
			map[string]any{"type": "content_block_stop", "index": 0},
		)
	}
	evs = append(evs,
		map[string]any{"type": "message_delta", "delta": map[string]any{"stop_reason": stop, "stop_sequence": nil}, "usage": map[string]any{"output_tokens": 5}},
		map[string]any{"type": "message_stop"},
	)
	return evs
}

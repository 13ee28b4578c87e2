package fakeapi

import (
	"bufio"
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
)

func post(t *testing.T, url string, body any) *http.Response {
	t.Helper()
	b, _ := json.Marshal(body)
	resp, err := http.Post(url, "application/json", bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { resp.Body.Close() })
	return resp
}

// sse reads a server-sent event stream into (event, data) pairs.
func sse(t *testing.T, r io.Reader) (names []string, data []map[string]any) {
	t.Helper()
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		l := sc.Text()
		switch {
		case strings.HasPrefix(l, "event: "):
			names = append(names, strings.TrimPrefix(l, "event: "))
		case strings.HasPrefix(l, "data: "):
			var m map[string]any
			if err := json.Unmarshal([]byte(strings.TrimPrefix(l, "data: ")), &m); err != nil {
				t.Fatalf("bad data line %q: %v", l, err)
			}
			data = append(data, m)
		}
	}
	return names, data
}

func TestScriptedConversation(t *testing.T) {
	s, err := Start([]Script{
		{Name: "a", Match: "alpha", Turns: []Turn{{Tool: "Bash", Input: map[string]any{"command": "ls -l"}}, {Text: "bye"}}},
		{Name: "b", Turns: []Turn{{Text: "default"}}},
	}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	tools := []any{map[string]any{"name": "Bash"}}
	user := map[string]any{"role": "user", "content": "please alpha"}
	resp := post(t, s.URL()+"/v1/messages", map[string]any{"model": "m", "stream": true, "tools": tools, "messages": []any{user}})
	if ct := resp.Header.Get("Content-Type"); ct != "text/event-stream" {
		t.Fatalf("content type %q", ct)
	}
	names, data := sse(t, resp.Body)
	want := []string{"message_start", "content_block_start", "content_block_delta", "content_block_stop", "message_delta", "message_stop"}
	if strings.Join(names, ",") != strings.Join(want, ",") {
		t.Fatalf("events %v", names)
	}
	cb := data[1]["content_block"].(map[string]any)
	if cb["type"] != "tool_use" || cb["id"] != ToolUseID("a", 0) || cb["name"] != "Bash" {
		t.Errorf("block %v", cb)
	}
	if pj := data[2]["delta"].(map[string]any)["partial_json"]; pj != `{"command":"ls -l"}` {
		t.Errorf("input %v", pj)
	}
	if sr := data[4]["delta"].(map[string]any)["stop_reason"]; sr != "tool_use" {
		t.Errorf("stop reason %v", sr)
	}
	// The next request carries the tool result: the script moves on.
	next := []any{user,
		map[string]any{"role": "assistant", "content": []any{map[string]any{"type": "tool_use", "id": ToolUseID("a", 0), "name": "Bash", "input": map[string]any{}}}},
		map[string]any{"role": "user", "content": []any{map[string]any{"type": "tool_result", "tool_use_id": ToolUseID("a", 0), "content": "out"}}},
	}
	_, data = sse(t, post(t, s.URL()+"/v1/messages", map[string]any{"stream": true, "tools": tools, "messages": next}).Body)
	if d := data[2]["delta"].(map[string]any); d["text"] != "bye" || data[4]["delta"].(map[string]any)["stop_reason"] != "end_turn" {
		t.Errorf("final turn %v %v", d, data[4])
	}
	// A side request (no tools) gets text and does not consume a turn;
	// count_tokens answers; unknown endpoints get {}.
	var msg map[string]any
	json.NewDecoder(post(t, s.URL()+"/v1/messages", map[string]any{"messages": []any{user}}).Body).Decode(&msg)
	if msg["stop_reason"] != "end_turn" {
		t.Errorf("side request %v", msg)
	}
	var ct map[string]any
	json.NewDecoder(post(t, s.URL()+"/v1/messages/count_tokens", map[string]any{}).Body).Decode(&ct)
	if ct["input_tokens"] == nil {
		t.Errorf("count_tokens %v", ct)
	}
	// Another conversation falls back to the unmatched script.
	_, data = sse(t, post(t, s.URL()+"/v1/messages", map[string]any{"stream": true, "tools": tools, "messages": []any{map[string]any{"role": "user", "content": "other"}}}).Body)
	if data[2]["delta"].(map[string]any)["text"] != "default" {
		t.Errorf("fallback %v", data[2])
	}
	reqs := s.Requests()
	if len(reqs) != 5 || reqs[1].Turn != 1 || len(reqs[1].ToolResults) != 1 || reqs[1].ToolResults[0].Content != "out" || reqs[2].Turn != -1 {
		t.Errorf("recorded %+v", reqs)
	}
}

func TestValidate(t *testing.T) {
	for _, c := range []struct {
		scripts []Script
		want    string
	}{
		{nil, "no script"},
		{[]Script{{Name: "x"}}, "no turns"},
		{[]Script{{Name: "x", Turns: []Turn{{Tool: "Bash", Text: "t"}}}}, "turn 0: exactly one"},
		{[]Script{{Name: "x", Turns: []Turn{{Tool: "Bash"}}}}, "last turn must be a text"},
	} {
		if _, err := Start(c.scripts, nil); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%+v: %v, want %q", c.scripts, err, c.want)
		}
	}
}

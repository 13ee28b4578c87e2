// Command mcpserver is a minimal stdio MCP server for the end-to-end tests:
// newline-delimited JSON-RPC 2.0 on stdin/stdout, one tool "probe" that
// writes the given text to the given file (so the test can see a file event
// made by an MCP server process) and returns "probed".
package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"os"
)

type request struct {
	JSONRPC string          `json:"jsonrpc"`
	ID      json.RawMessage `json:"id,omitempty"`
	Method  string          `json:"method"`
	Params  json.RawMessage `json:"params,omitempty"`
}

func main() {
	in := bufio.NewScanner(os.Stdin)
	in.Buffer(make([]byte, 1<<20), 16<<20)
	out := json.NewEncoder(os.Stdout)
	for in.Scan() {
		var r request
		if err := json.Unmarshal(in.Bytes(), &r); err != nil {
			fmt.Fprintln(os.Stderr, "mcpserver: bad request:", err)
			continue
		}
		if len(r.ID) == 0 {
			continue // a notification
		}
		result, rpcErr := handle(r)
		resp := map[string]any{"jsonrpc": "2.0", "id": r.ID}
		if rpcErr != "" {
			resp["error"] = map[string]any{"code": -32601, "message": rpcErr}
		} else {
			resp["result"] = result
		}
		if err := out.Encode(resp); err != nil {
			os.Exit(1)
		}
	}
}

func handle(r request) (any, string) {
	switch r.Method {
	case "initialize":
		var p struct {
			ProtocolVersion string `json:"protocolVersion"`
		}
		_ = json.Unmarshal(r.Params, &p)
		if p.ProtocolVersion == "" {
			p.ProtocolVersion = "2024-11-05"
		}
		return map[string]any{
			"protocolVersion": p.ProtocolVersion,
			"capabilities":    map[string]any{"tools": map[string]any{}},
			"serverInfo":      map[string]any{"name": "lineaged-test", "version": "1.0.0"},
		}, ""
	case "tools/list":
		return map[string]any{"tools": []any{map[string]any{
			"name":        "probe",
			"description": "writes text to a file",
			"inputSchema": map[string]any{
				"type": "object",
				"properties": map[string]any{
					"path": map[string]any{"type": "string"},
					"text": map[string]any{"type": "string"},
				},
				"required": []string{"path", "text"},
			},
		}}}, ""
	case "tools/call":
		var p struct {
			Name      string `json:"name"`
			Arguments struct {
				Path string `json:"path"`
				Text string `json:"text"`
			} `json:"arguments"`
		}
		_ = json.Unmarshal(r.Params, &p)
		msg := "probed"
		if err := os.WriteFile(p.Arguments.Path, []byte(p.Arguments.Text), 0o600); err != nil {
			msg = err.Error()
		}
		return map[string]any{"content": []any{map[string]any{"type": "text", "text": msg}}}, ""
	case "ping":
		return map[string]any{}, ""
	case "resources/list":
		return map[string]any{"resources": []any{}}, ""
	case "prompts/list":
		return map[string]any{"prompts": []any{}}, ""
	}
	return nil, "method not found: " + r.Method
}

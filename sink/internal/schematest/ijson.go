package schematest

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"os/exec"
	"strconv"
	"strings"
	"unicode/utf8"
)

// IJSON checks that line is one I-JSON message (RFC 7493), strictly: valid
// UTF-8, valid JSON, no escaped lone surrogate (\udcXX alone, a low one
// first, a high one without its low half), no duplicate member name in any
// object, and no number beyond an IEEE 754 double's exact integers
// (2^53-1) or not finite. Consumers such as serde_json reject an event
// that fails any of these.
func IJSON(line []byte) error {
	if !utf8.Valid(line) {
		return errors.New("not valid UTF-8")
	}
	if !json.Valid(line) {
		return errors.New("not valid JSON")
	}
	if err := surrogates(line); err != nil {
		return err
	}
	d := json.NewDecoder(bytes.NewReader(line))
	d.UseNumber()
	return walk(d, "$")
}

// surrogates finds \uD800-\uDFFF escapes that do not form a pair.
func surrogates(b []byte) error {
	for i := 0; i < len(b); i++ {
		if b[i] != '\\' {
			continue
		}
		i++
		if i >= len(b) || b[i] != 'u' || i+4 >= len(b) {
			continue
		}
		v, err := strconv.ParseUint(string(b[i+1:i+5]), 16, 16)
		if err != nil {
			return fmt.Errorf("bad escape at %d", i)
		}
		i += 4
		switch {
		case v >= 0xdc00 && v <= 0xdfff:
			return fmt.Errorf("lone low surrogate \\u%04x at byte %d", v, i-5)
		case v >= 0xd800 && v <= 0xdbff:
			if i+6 >= len(b) || b[i+1] != '\\' || b[i+2] != 'u' {
				return fmt.Errorf("lone high surrogate \\u%04x at byte %d", v, i-5)
			}
			lo, err := strconv.ParseUint(string(b[i+3:i+7]), 16, 16)
			if err != nil || lo < 0xdc00 || lo > 0xdfff {
				return fmt.Errorf("lone high surrogate \\u%04x at byte %d", v, i-5)
			}
			i += 6
		}
	}
	return nil
}

// walk reads one value from d, checking member names and numbers.
func walk(d *json.Decoder, path string) error {
	tok, err := d.Token()
	if err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	switch t := tok.(type) {
	case json.Delim:
		switch t {
		case '{':
			seen := map[string]bool{}
			for d.More() {
				k, err := d.Token()
				if err != nil {
					return err
				}
				key := k.(string)
				if seen[key] {
					return fmt.Errorf("%s: duplicate member %q", path, key)
				}
				seen[key] = true
				if err := walk(d, path+"."+key); err != nil {
					return err
				}
			}
		case '[':
			for i := 0; d.More(); i++ {
				if err := walk(d, path+"["+strconv.Itoa(i)+"]"); err != nil {
					return err
				}
			}
		}
		_, err := d.Token() // the closing delimiter
		return err
	case json.Number:
		f, err := strconv.ParseFloat(string(t), 64)
		if err != nil || math.IsInf(f, 0) || math.IsNaN(f) {
			return fmt.Errorf("%s: number %s is not a finite double", path, t)
		}
		if !strings.ContainsAny(string(t), ".eE") && math.Abs(f) > 1<<53-1 {
			return fmt.Errorf("%s: integer %s beyond 2^53-1", path, t)
		}
	}
	return nil
}

// pythonCheck reads lines, parses each with json.loads and encodes every
// value back as strict UTF-8 (a lone surrogate raises), as a Python
// consumer would before handing text on.
const pythonCheck = `
import json, sys
n = 0
for i, line in enumerate(sys.stdin.buffer.read().split(b"\n")):
    if not line:
        continue
    try:
        text = line.decode("utf-8")
        obj = json.loads(text)
        json.dumps(obj, ensure_ascii=False).encode("utf-8")
    except Exception as e:
        print("line %d: %s: %r" % (i + 1, type(e).__name__, e))
        sys.exit(1)
    n += 1
print(n)
`

// PythonIJSON runs every line through Python's json.loads followed by a
// strict UTF-8 encode, and returns how many lines passed. It needs python3.
func PythonIJSON(lines [][]byte) (int, error) {
	py, err := exec.LookPath("python3")
	if err != nil {
		return 0, fmt.Errorf("python3 is required: %w", err)
	}
	cmd := exec.Command(py, "-c", pythonCheck)
	in, err := cmd.StdinPipe()
	if err != nil {
		return 0, err
	}
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		return 0, err
	}
	go func() {
		for _, l := range lines {
			_, _ = in.Write(append(bytes.TrimRight(l, "\n"), '\n'))
		}
		_ = in.Close()
	}()
	if err := cmd.Wait(); err != nil {
		return 0, fmt.Errorf("python: %v: %s", err, out.String())
	}
	n, err := strconv.Atoi(strings.TrimSpace(out.String()))
	if err != nil {
		return 0, fmt.Errorf("python: %q", out.String())
	}
	return n, nil
}

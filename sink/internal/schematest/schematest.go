// Package schematest loads the native JSON Schemas,
// docs/lineaged-v2.schema.json and, for the v1 compatibility output,
// docs/lineaged-v1.schema.json, for tests that validate real encoder output
// against the published schema.
package schematest

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"runtime"

	"github.com/santhosh-tekuri/jsonschema/v6"
)

// RepoRoot returns the repository root, found from this source file so tests
// work from any package directory.
func RepoRoot() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Clean(filepath.Join(filepath.Dir(file), "..", "..", ".."))
}

// SchemaPath is the path of the native JSON Schema (lineaged/v2).
func SchemaPath() string {
	return filepath.Join(RepoRoot(), "docs", "lineaged-v2.schema.json")
}

// SchemaPathV1 is the path of the lineaged/v1 JSON Schema.
func SchemaPathV1() string {
	return filepath.Join(RepoRoot(), "docs", "lineaged-v1.schema.json")
}

// Native compiles the lineaged/v2 JSON Schema.
func Native() (*jsonschema.Schema, error) { return compile(SchemaPath()) }

// NativeV1 compiles the lineaged/v1 JSON Schema.
func NativeV1() (*jsonschema.Schema, error) { return compile(SchemaPathV1()) }

func compile(path string) (*jsonschema.Schema, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	doc, err := jsonschema.UnmarshalJSON(f)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	c := jsonschema.NewCompiler()
	c.AssertFormat()
	if err := c.AddResource(path, doc); err != nil {
		return nil, err
	}
	return c.Compile(path)
}

// Validate checks one encoded event against the schema.
func Validate(s *jsonschema.Schema, line []byte) error {
	v, err := jsonschema.UnmarshalJSON(bytes.NewReader(line))
	if err != nil {
		return fmt.Errorf("not JSON: %w: %s", err, line)
	}
	return s.Validate(v)
}

package render

import (
	"testing"

	kyaml "sigs.k8s.io/kustomize/kyaml/yaml"
)

// TestNodeJSON holds nodeJSON to what kyaml's MarshalJSON makes of the
// YAML that trips converters up: YAML 1.1 booleans, numbers that are
// strings, big and float numbers, nulls, timestamps, anchors and merge
// keys, block scalars, empty collections and non-ASCII text.
func TestNodeJSON(t *testing.T) {
	docs := map[string]string{
		"scalars": `apiVersion: v1
kind: ConfigMap
metadata:
  name: scalars
data:
  yes: "yes"
  on: on
  off: "off"
  octal: "0755"
  version: "1.10"
  plainVersion: 1.10
  big: 12345678901234567890
  int: 42
  negative: -7
  float: 1.0
  exp: 1e3
  hex: 0x1F
  empty: ""
  nothing: null
  tilde: ~
  date: 2026-11-29
  stamp: 2026-11-29T10:00:00Z
  text: "Grüße, 世界"
`,
		"structure": `apiVersion: cyclone.dev/v1alpha1
kind: Stage
metadata:
  name: structure
  labels: {}
  annotations:
    note: |
      two
      lines
    folded: >
      one
      line
spec:
  defaults: &defaults
    image: golang:1.27
    args: []
  pod:
    spec:
      containers:
      - <<: *defaults
        name: main
        command: [go, test, "./..."]
      - *defaults
`,
	}
	for name, doc := range docs {
		t.Run(name, func(t *testing.T) {
			rn, err := kyaml.Parse(doc)
			if err != nil {
				t.Fatal(err)
			}
			want, err := rn.MarshalJSON()
			if err != nil {
				t.Fatal(err)
			}
			got, err := nodeJSON(rn)
			if err != nil {
				t.Fatal(err)
			}
			if string(got) != string(want) {
				t.Errorf("nodeJSON:\n%s\nkyaml MarshalJSON:\n%s", got, want)
			}
		})
	}
}

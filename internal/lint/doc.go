// Package lint holds tests that check the module as a whole rather than one
// package: the import rules of the layout (design.md section 3, restated
// in docs/internals.md). It has no code of its own; run it with
// go test ./internal/lint.
package lint

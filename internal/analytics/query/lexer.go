package query

import (
	"fmt"
	"strings"
	"unicode"
	"unicode/utf8"
)

// Pos is a position in the SQL text: 1-based line and column (in runes).
type Pos struct {
	Line, Col int
}

func (p Pos) String() string { return fmt.Sprintf("%d:%d", p.Line, p.Col) }

// tokKind is the lexical class of a token.
type tokKind int

const (
	tokEOF tokKind = iota
	tokIdent
	tokNumber
	tokDuration // a number directly followed by a unit: 30s, 1m, 500ms
	tokString   // '...'
	tokPunct    // ( ) , . [ ] * + - / = != <> < <= > >=
	tokIllegal
)

func (k tokKind) String() string {
	switch k {
	case tokEOF:
		return "end of query"
	case tokIdent:
		return "identifier"
	case tokNumber:
		return "number"
	case tokDuration:
		return "duration"
	case tokString:
		return "string"
	case tokPunct:
		return "symbol"
	}
	return "illegal character"
}

// token is one lexeme. Text is the identifier (unquoted), the number or
// duration as written, the string's decoded value, or the symbol.
type token struct {
	kind   tokKind
	text   string
	pos    Pos
	quoted bool // a "double-quoted" identifier: never a keyword
}

// describe is how an error names the token it found.
func (t token) describe() string {
	switch t.kind {
	case tokEOF:
		return "end of query"
	case tokString:
		return fmt.Sprintf("string '%s'", t.text)
	case tokIllegal:
		return fmt.Sprintf("illegal %s", t.text)
	}
	return fmt.Sprintf("'%s'", t.text)
}

// lexer splits SQL into tokens. It never fails: bad input becomes a
// tokIllegal token, which the parser reports with its position.
type lexer struct {
	src       string
	off       int
	line, col int
}

func newLexer(src string) *lexer { return &lexer{src: src, line: 1, col: 1} }

func (l *lexer) peekRune() (rune, int) {
	if l.off >= len(l.src) {
		return -1, 0
	}
	return utf8.DecodeRuneInString(l.src[l.off:])
}

func (l *lexer) advance() rune {
	r, n := l.peekRune()
	if n == 0 {
		return -1
	}
	l.off += n
	if r == '\n' {
		l.line++
		l.col = 1
	} else {
		l.col++
	}
	return r
}

// skipSpace skips white space and -- comments.
func (l *lexer) skipSpace() {
	for {
		r, _ := l.peekRune()
		switch {
		case r == -1:
			return
		case unicode.IsSpace(r):
			l.advance()
		case r == '-' && strings.HasPrefix(l.src[l.off:], "--"):
			for r != '\n' && r != -1 {
				l.advance()
				r, _ = l.peekRune()
			}
		default:
			return
		}
	}
}

func isIdentStart(r rune) bool { return r == '_' || unicode.IsLetter(r) }
func isIdentPart(r rune) bool  { return r == '_' || unicode.IsLetter(r) || unicode.IsDigit(r) }
func isDigit(r rune) bool      { return r >= '0' && r <= '9' }

// next returns the next token.
func (l *lexer) next() token {
	l.skipSpace()
	pos := Pos{l.line, l.col}
	start := l.off
	r, _ := l.peekRune()
	switch {
	case r == -1:
		return token{kind: tokEOF, pos: pos}
	case isIdentStart(r):
		for isIdentPart(r) {
			l.advance()
			r, _ = l.peekRune()
		}
		return token{kind: tokIdent, text: l.src[start:l.off], pos: pos}
	case isDigit(r):
		return l.number(pos)
	case r == '\'':
		return l.quoted(pos, '\'', tokString)
	case r == '"':
		t := l.quoted(pos, '"', tokIdent)
		t.quoted = t.kind == tokIdent
		return t
	}
	l.advance()
	two := ""
	if l.off < len(l.src) {
		two = string(r) + string(l.src[l.off])
	}
	switch two {
	case "!=", "<>", "<=", ">=":
		l.advance()
		return token{kind: tokPunct, text: two, pos: pos}
	}
	if strings.ContainsRune("(),.[]*+-/=<>", r) {
		return token{kind: tokPunct, text: string(r), pos: pos}
	}
	return token{kind: tokIllegal, text: fmt.Sprintf("character %q", r), pos: pos}
}

// number scans digits, an optional fraction and exponent, and an optional
// unit glued to them (which makes it a duration).
func (l *lexer) number(pos Pos) token {
	start := l.off
	digits := func() {
		for r, _ := l.peekRune(); isDigit(r); r, _ = l.peekRune() {
			l.advance()
		}
	}
	digits()
	if r, _ := l.peekRune(); r == '.' && l.off+1 < len(l.src) && isDigit(rune(l.src[l.off+1])) {
		l.advance()
		digits()
	}
	if r, _ := l.peekRune(); r == 'e' || r == 'E' {
		rest := l.src[l.off+1:]
		if rest != "" && (isDigit(rune(rest[0])) || (len(rest) > 1 && (rest[0] == '+' || rest[0] == '-') && isDigit(rune(rest[1])))) {
			l.advance()
			if r, _ := l.peekRune(); r == '+' || r == '-' {
				l.advance()
			}
			digits()
		}
	}
	kind := tokNumber
	if r, _ := l.peekRune(); isIdentStart(r) {
		kind = tokDuration
		for isIdentPart(r) {
			l.advance()
			r, _ = l.peekRune()
		}
	}
	return token{kind: kind, text: l.src[start:l.off], pos: pos}
}

// quoted scans a string or quoted identifier; a doubled quote stands for
// one.
func (l *lexer) quoted(pos Pos, q rune, kind tokKind) token {
	l.advance()
	var b strings.Builder
	for {
		r := l.advance()
		switch r {
		case -1:
			return token{kind: tokIllegal, text: "unterminated " + kind.String(), pos: pos}
		case q:
			if n, _ := l.peekRune(); n == q {
				l.advance()
				b.WriteRune(q)
				continue
			}
			return token{kind: kind, text: b.String(), pos: pos}
		}
		b.WriteRune(r)
	}
}

// Parser for the canonical prefix syntax printed by Expr.ToString():
//   expr := terminal | unary '(' expr ')' | binary '(' expr ',' expr ')'
// Whitespace anywhere between tokens; names case-insensitive. Errors carry the 0-based
// character position and what was expected, so a typo in a CLI argument is easy to find.
// Nesting is bounded before recursing (Expr.MaxDepth levels), so no input can exhaust the stack.
namespace PrunerZero.Kernels;

public sealed class MetricParseException : UserError
{
    public int Position { get; }
    public string Input { get; }

    public MetricParseException(string input, int position, string message)
        : base($"at {position}: {message} (in \"{Excerpt(input, position)}\")")
    {
        Input = input;
        Position = position;
    }

    /// <summary>The input, or for a long one (a pasted or generated line) 60 characters either side of the position.</summary>
    public static string Excerpt(string input, int position)
    {
        if (input.Length <= 160) return input;
        int from = Math.Clamp(position - 60, 0, input.Length), to = Math.Clamp(position + 60, from, input.Length);
        return $"{(from > 0 ? "..." : "")}{input[from..to]}{(to < input.Length ? "..." : "")}; {input.Length} characters";
    }
}

public static class MetricParser
{
    public static Expr Parse(string text)
    {
        ArgumentNullException.ThrowIfNull(text);
        var p = new State(text);
        var e = p.ParseExpr();
        p.SkipWs();
        if (p.Pos < text.Length)
            throw p.Error("expected end of input");
        return e;
    }

    public static bool TryParse(string text, out Expr? expr, out MetricParseException? error)
    {
        try { expr = Parse(text); error = null; return true; }
        catch (MetricParseException ex) { expr = null; error = ex; return false; }
    }

    sealed class State(string text)
    {
        public int Pos;

        public void SkipWs()
        {
            while (Pos < text.Length && char.IsWhiteSpace(text[Pos])) Pos++;
        }

        string Found() => Pos < text.Length ? $"'{text[Pos]}'" : "end of input";

        public MetricParseException Error(string expected) =>
            new(text, Pos, $"{expected} but found {Found()}");

        int _level;

        public Expr ParseExpr()
        {
            SkipWs();
            if (++_level > Expr.MaxDepth)
                throw new MetricParseException(text, Pos, $"expression nested deeper than {Expr.MaxDepth} levels (the limit)");
            try { return ParseNode(); }
            finally { _level--; }
        }

        Expr ParseNode()
        {
            int start = Pos;
            while (Pos < text.Length && (char.IsLetterOrDigit(text[Pos]) || text[Pos] == '_')) Pos++;
            if (Pos == start)
                throw Error("expected a terminal (W, G, X) or an operator name");
            var name = text[start..Pos];
            if (!Ops.TryParse(name, out var op))
                throw new MetricParseException(text, start,
                    $"unknown name '{name}'; expected one of {string.Join(", ", Ops.All.Select(Ops.Name))}");
            int arity = Ops.Arity(op);
            if (arity == 0) return Expr.Leaf(op);

            SkipWs();
            Expect('(', $"expected '(' after '{Ops.Name(op)}'");
            var a = ParseExpr();
            SkipWs();
            if (arity == 1)
            {
                Expect(')', $"expected ')' closing unary '{Ops.Name(op)}'");
                return Build(() => Expr.Unary(op, a), start);
            }
            Expect(',', $"expected ',' before the second argument of binary '{Ops.Name(op)}'");
            var b = ParseExpr();
            SkipWs();
            Expect(')', $"expected ')' closing binary '{Ops.Name(op)}'");
            return Build(() => Expr.Binary(op, a, b), start);
        }

        /// <summary>A node within the depth limit can still exceed Expr.MaxSize: reported as a parse error.</summary>
        Expr Build(Func<Expr> make, int at)
        {
            try { return make(); }
            catch (ExprTooLargeException e) { throw new MetricParseException(text, at, e.Message); }
        }

        void Expect(char c, string expected)
        {
            if (Pos < text.Length && text[Pos] == c) { Pos++; return; }
            throw Error(expected);
        }
    }
}

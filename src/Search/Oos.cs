// OOS (opposing operation simplification) and canonicalisation, applied to every candidate before
// it is evaluated. The canonical form's ToString() is the evaluation cache key, so equivalent
// candidates are evaluated once.
//
// Every rule must be an identity of the *protected* primitives (see the metric language in README.md), exact or
// exact up to float rounding, assuming finite intermediate values and the terminals' contract
// (W, G, X >= 0). The rule table with the justification of each rule is in SEARCH.md; the names
// below are the ones that table and the property tests use.
//
// Zero: the language has no constants, but sub(x, x) is 0 everywhere. We represent zero by the one
// tree Zero = sub(W, W) and simplify around it (add(a, 0) = a, ...). A tree whose value does not
// depend on the inputs at all (zero, log(0), exp(0), ...) carries no ranking: IsConstant says so and
// the search rejects such candidates without evaluating them.
using PrunerZero.Kernels;

namespace PrunerZero.Search;

public static class Oos
{
    /// <summary>The canonical zero: sub(W, W) = 0 for every input.</summary>
    public static readonly Expr Zero = Expr.Binary(Op.Sub, Expr.W, Expr.W);

    /// <summary>Every rule name Simplify can report (for tests that check each rule fired and held).</summary>
    public static readonly IReadOnlyList<string> RuleNames =
    [
        "skp", "pow-sqr", "zero-unary", "const-normalise", "neg-neg", "neg-sub", "even-neg", "even-abs",
        "abs-nonneg", "sqrt-sqr", "sqr-sqrt", "odd-tanh", "odd-zsn", "norm-affine", "norm-scale",
        "sub-self", "zero-binary", "add-neg", "sub-neg", "mul-neg", "div-sign", "pdiv-neg", "mul-self", "commute",
    ];

    /// <summary>Rewrites to a fixed point. Optionally records the name of every rule that fired.</summary>
    public static Expr Simplify(Expr e, ICollection<string>? fired = null)
    {
        ArgumentNullException.ThrowIfNull(e);
        // Every rule shrinks the tree, removes a neg, or moves a neg towards the root (or sorts operands),
        // so this terminates; the bound only guards against a future rule that breaks that.
        for (int pass = 0; pass < 1000; pass++)
        {
            var next = Pass(e, fired);
            if (next == e) return next;
            e = next;
        }
        throw new InvalidOperationException($"OOS did not reach a fixed point for {e} (a rule cycle: this is a bug)");
    }

    /// <summary>Canonical string: the evaluation cache key.</summary>
    public static string Canonical(Expr e) => Simplify(e).ToString();

    /// <summary>True when the value does not depend on W, G or X (zero or built only from zero).</summary>
    public static bool IsConstant(Expr e) =>
        e == Zero || (!e.IsTerminal && e.Children.All(IsConstant));

    /// <summary>Provably >= 0 everywhere (given W, G, X >= 0), or NaN. Conservative: false means "not proven".</summary>
    public static bool IsNonNegative(Expr e) => e.Op switch
    {
        Op.W or Op.G or Op.X => true,
        Op.Sqr or Op.Pow or Op.Abs or Op.Sqrt or Op.Exp or Op.Mms => true,
        Op.Tanh or Op.Skp => IsNonNegative(e.Children[0]),
        Op.Add => IsNonNegative(e.Children[0]) && IsNonNegative(e.Children[1]),
        Op.Sub => e == Zero,
        Op.Mul => e.Children[0] == e.Children[1] || (IsNonNegative(e.Children[0]) && IsNonNegative(e.Children[1])),
        Op.Div => IsNonNegative(e.Children[0]),
        Op.PDiv => IsNonNegative(e.Children[0]) && IsNonNegative(e.Children[1]),
        _ => false, // neg, log, zsn
    };

    static Expr Pass(Expr e, ICollection<string>? fired)
    {
        if (e.IsTerminal) return e;
        Expr node;
        if (e.Children.Count == 1)
        {
            var a = Pass(e.Children[0], fired);
            node = ReferenceEquals(a, e.Children[0]) ? e : Expr.Unary(e.Op, a);
        }
        else
        {
            var a = Pass(e.Children[0], fired);
            var b = Pass(e.Children[1], fired);
            node = ReferenceEquals(a, e.Children[0]) && ReferenceEquals(b, e.Children[1]) ? e : Expr.Binary(e.Op, a, b);
        }
        // Local rewrites at this node until none applies; new inner nodes are revisited by the next pass.
        for (int i = 0; i < 100; i++)
        {
            var r = node.Children.Count == 1 ? RewriteUnary(node) : RewriteBinary(node);
            if (r is null || r.Value.Result == node) break;
            fired?.Add(r.Value.Rule);
            node = r.Value.Result;
            if (node.IsTerminal) break;
        }
        return node;
    }

    static Expr U(Op op, Expr a) => Expr.Unary(op, a);
    static Expr B(Op op, Expr a, Expr b) => Expr.Binary(op, a, b);

    static (Expr Result, string Rule)? RewriteUnary(Expr e)
    {
        var op = e.Op;
        var a = e.Children[0];
        var inner = a.Op;
        Expr? x = a.IsTerminal ? null : a.Children[0]; // a's first child, when a has one

        if (op == Op.Skp) return (a, "skp");
        if (op == Op.Pow) return (U(Op.Sqr, a), "pow-sqr");
        // f(0) = 0 for these (mms, zsn: degenerate range / std gives 0).
        if (a == Zero && op is Op.Neg or Op.Abs or Op.Sqr or Op.Sqrt or Op.Tanh or Op.Mms or Op.Zsn)
            return (Zero, "zero-unary");
        // A constant operand has max == min and std == 0: mms and zsn give 0 by definition.
        if (IsConstant(a) && op is Op.Mms or Op.Zsn) return (Zero, "const-normalise");
        if (op == Op.Neg && inner == Op.Neg) return (x!, "neg-neg");
        if (op == Op.Neg && inner == Op.Sub) return (B(Op.Sub, a.Children[1], a.Children[0]), "neg-sub");
        // Even functions (abs, sqr, sqrt and log take |x| first) ignore the operand's sign.
        if (op is Op.Abs or Op.Sqr or Op.Sqrt or Op.Log)
        {
            if (inner == Op.Neg) return (U(op, x!), "even-neg");
            if (inner == Op.Abs) return (U(op, x!), "even-abs");
        }
        if (op == Op.Abs && IsNonNegative(a)) return (a, "abs-nonneg");
        if (op == Op.Sqrt && inner is Op.Sqr or Op.Pow) return (U(Op.Abs, x!), "sqrt-sqr");
        if (op is Op.Sqr && inner == Op.Sqrt) return (U(Op.Abs, x!), "sqr-sqrt");
        if (op == Op.Tanh && inner == Op.Neg) return (U(Op.Neg, U(Op.Tanh, x!)), "odd-tanh");
        if (op == Op.Zsn && inner == Op.Neg) return (U(Op.Neg, U(Op.Zsn, x!)), "odd-zsn");
        // mms and zsn are invariant under x -> s*x + t with s > 0; mms, zsn (non-degenerate) are such maps
        // of their operand, and when degenerate both sides are 0.
        if (op is Op.Mms or Op.Zsn && inner is Op.Mms or Op.Zsn) return (U(op, x!), "norm-affine");
        // div(p, q) = p * (1/||q||_F), a positive scale (or p itself when ||q|| = 0).
        if (op is Op.Mms or Op.Zsn && inner == Op.Div) return (U(op, x!), "norm-scale");
        return null;
    }

    static (Expr Result, string Rule)? RewriteBinary(Expr e)
    {
        var op = e.Op;
        Expr a = e.Children[0], b = e.Children[1];
        bool negA = a.Op == Op.Neg, negB = b.Op == Op.Neg;

        if (op == Op.Sub && a == b) return (Zero, "sub-self");
        if (a == Zero || b == Zero)
        {
            switch (op)
            {
                case Op.Add: return (a == Zero ? b : a, "zero-binary");
                case Op.Sub: return (a == Zero ? U(Op.Neg, b) : a, "zero-binary"); // b == Zero: a - 0 = a
                case Op.Mul: return (Zero, "zero-binary");
                case Op.Div or Op.PDiv: return (a == Zero ? Zero : a, "zero-binary"); // 0/q = 0; ||0|| = 0 and |0| < eps leave p unchanged
            }
        }
        switch (op)
        {
            case Op.Add when negB: return (B(Op.Sub, a, b.Children[0]), "add-neg");
            case Op.Add when negA: return (B(Op.Sub, b, a.Children[0]), "add-neg");
            case Op.Sub when negB: return (B(Op.Add, a, b.Children[0]), "sub-neg");
            case Op.Sub when negA: return (U(Op.Neg, B(Op.Add, a.Children[0], b)), "sub-neg");
            case Op.Mul when negA: return (U(Op.Neg, B(Op.Mul, a.Children[0], b)), "mul-neg");
            case Op.Mul when negB: return (U(Op.Neg, B(Op.Mul, a, b.Children[0])), "mul-neg");
            case Op.Div when negA: return (U(Op.Neg, B(Op.Div, a.Children[0], b)), "div-sign");
            case Op.Div when negB || b.Op == Op.Abs: return (B(Op.Div, a, b.Children[0]), "div-sign"); // ||-q|| = ||q|| = || |q| ||
            case Op.PDiv when negA: return (U(Op.Neg, B(Op.PDiv, a.Children[0], b)), "pdiv-neg");
            case Op.Mul when a == b: return (U(Op.Sqr, a), "mul-self");
        }
        if (op is Op.Add or Op.Mul && string.CompareOrdinal(a.ToString(), b.ToString()) > 0)
            return (B(op, b, a), "commute");
        return null;
    }
}

// Metric expression trees: the symbolic pruning metric f(W, G, X) of Pruner-Zero.
// Contract: an Expr is immutable; equality and hashing are structural; ToString() prints the
// canonical prefix syntax (e.g. "mul(sqr(W), mms(G))") that MetricParser.Parse reads back.
// The Search component (GP) builds and mutates trees through Ops.*, Expr.Leaf/Unary/Binary,
// Preorder() and ReplaceAt().
using System.Text;

namespace PrunerZero.Kernels;

/// <summary>Every node kind. Terminals first, then unary, then binary operators.</summary>
public enum Op
{
    // terminals
    W, G, X,
    // unary
    Sqr, Pow, Neg, Abs, Tanh, Skp, Log, Sqrt, Exp, Mms, Zsn,
    // binary
    Add, Sub, Mul, Div, PDiv,
}

/// <summary>The three inputs: W = |weight|, G = gradient magnitude, X = per-input-column activation statistic.</summary>
public enum Terminal { W, G, X }

/// <summary>Static facts about operators: arity, canonical names, the sets the GP draws from.</summary>
public static class Ops
{
    public static readonly IReadOnlyList<Op> Terminals = [Op.W, Op.G, Op.X];
    public static readonly IReadOnlyList<Op> Unary =
        [Op.Sqr, Op.Pow, Op.Neg, Op.Abs, Op.Tanh, Op.Skp, Op.Log, Op.Sqrt, Op.Exp, Op.Mms, Op.Zsn];
    public static readonly IReadOnlyList<Op> Binary = [Op.Add, Op.Sub, Op.Mul, Op.Div, Op.PDiv];
    public static readonly IReadOnlyList<Op> All = [.. Terminals, .. Unary, .. Binary];

    public static int Arity(Op op) => op switch
    {
        Op.W or Op.G or Op.X => 0,
        >= Op.Add => 2,
        _ => 1,
    };

    /// <summary>True for ops that need a whole-matrix reduction of an operand (mms, zsn, div).</summary>
    public static bool NeedsReduction(Op op) => op is Op.Mms or Op.Zsn or Op.Div;

    /// <summary>Canonical name as printed: terminals upper case, operators lower case.</summary>
    public static string Name(Op op) => op switch
    {
        Op.W => "W", Op.G => "G", Op.X => "X",
        Op.PDiv => "pdiv",
        _ => op.ToString().ToLowerInvariant(),
    };

    /// <summary>Case-insensitive lookup of an operator or terminal name.</summary>
    public static bool TryParse(string name, out Op op)
    {
        foreach (var o in All)
            if (string.Equals(Name(o), name, StringComparison.OrdinalIgnoreCase)) { op = o; return true; }
        op = default;
        return false;
    }

    public static Op ToOp(Terminal t) => t switch { Terminal.W => Op.W, Terminal.G => Op.G, _ => Op.X };
}

/// <summary>A tree deeper than <see cref="Expr.MaxDepth"/> or larger than <see cref="Expr.MaxSize"/> was built.</summary>
public sealed class ExprTooLargeException(string message) : ArgumentException(message);

/// <summary>Immutable metric tree node. Build with Leaf/Unary/Binary (or W, G, X).</summary>
public sealed class Expr : IEquatable<Expr>
{
    /// <summary>
    /// The deepest tree there is: at most 64 nodes on any root-to-leaf path (height 63). The search's trees
    /// stay far below it (height 5, crossover at most twice that). Every constructor enforces it, so
    /// printing, compiling and evaluating a tree (all recursive) never recurse deeper than this.
    /// </summary>
    public const int MaxDepth = 64;

    /// <summary>The most nodes a tree may have (a full binary tree of height 11 has 4095).</summary>
    public const int MaxSize = 4096;

    public static readonly Expr W = new(Op.W, []);
    public static readonly Expr G = new(Op.G, []);
    public static readonly Expr X = new(Op.X, []);

    public Op Op { get; }
    public IReadOnlyList<Expr> Children => _children;
    /// <summary>Nodes on the longest root-to-leaf path: a terminal has Depth 1, sqr(W) has Depth 2.</summary>
    public int Depth { get; }
    /// <summary>Number of nodes in the tree.</summary>
    public int Size { get; }

    readonly Expr[] _children;
    readonly int _hash;
    string? _text;

    Expr(Op op, Expr[] children)
    {
        Op = op;
        _children = children;
        int depth = 0, size = 1;
        // A stable hash (not System.HashCode, which is randomized per process): the same tree hashes alike in every run.
        ulong h = Mix((ulong)op + 0x51ED_2701UL);
        foreach (var c in children)
        {
            depth = Math.Max(depth, c.Depth);
            size += c.Size;
            h = Mix(h ^ (uint)c._hash);
        }
        Depth = depth + 1;
        Size = size;
        if (Depth > MaxDepth)
            throw new ExprTooLargeException($"expression nested {Depth} deep; at most {MaxDepth} levels are allowed");
        if (Size > MaxSize)
            throw new ExprTooLargeException($"expression has {Size} nodes; at most {MaxSize} are allowed");
        _hash = (int)(h ^ (h >> 32));
    }

    public static Expr Leaf(Terminal t) => t switch { Terminal.W => W, Terminal.G => G, _ => X };

    public static Expr Leaf(Op op) => op switch
    {
        Op.W => W, Op.G => G, Op.X => X,
        _ => throw new ArgumentException($"'{Ops.Name(op)}' is not a terminal (W, G or X)", nameof(op)),
    };

    public static Expr Unary(Op op, Expr a)
    {
        ArgumentNullException.ThrowIfNull(a);
        if (Ops.Arity(op) != 1)
            throw new ArgumentException($"'{Ops.Name(op)}' is not a unary operator (arity {Ops.Arity(op)})", nameof(op));
        return new Expr(op, [a]);
    }

    public static Expr Binary(Op op, Expr a, Expr b)
    {
        ArgumentNullException.ThrowIfNull(a);
        ArgumentNullException.ThrowIfNull(b);
        if (Ops.Arity(op) != 2)
            throw new ArgumentException($"'{Ops.Name(op)}' is not a binary operator (arity {Ops.Arity(op)})", nameof(op));
        return new Expr(op, [a, b]);
    }

    /// <summary>Builds a node of any arity from an op and exactly Arity(op) children.</summary>
    public static Expr Create(Op op, params Expr[] children)
    {
        if (children.Length != Ops.Arity(op))
            throw new ArgumentException($"'{Ops.Name(op)}' takes {Ops.Arity(op)} argument(s), got {children.Length}", nameof(children));
        return children.Length switch { 0 => Leaf(op), 1 => Unary(op, children[0]), _ => Binary(op, children[0], children[1]) };
    }

    public bool IsTerminal => _children.Length == 0;

    /// <summary>True if the terminal appears anywhere in the tree (so callers know whether G or X must be computed).</summary>
    public bool Uses(Terminal t)
    {
        var op = Ops.ToOp(t);
        if (Op == op) return true;
        foreach (var c in _children) if (c.Uses(t)) return true;
        return false;
    }

    public bool UsesW => Uses(Terminal.W);
    public bool UsesG => Uses(Terminal.G);
    public bool UsesX => Uses(Terminal.X);

    /// <summary>A node in preorder: Index into the preorder sequence, Level (root = 0), and the subtree.</summary>
    public readonly record struct NodeRef(int Index, int Level, Expr Node);

    /// <summary>All nodes in preorder (root first, then children left to right). Index i matches NodeAt/ReplaceAt.</summary>
    public IReadOnlyList<NodeRef> Preorder()
    {
        var list = new List<NodeRef>(Size);
        void Walk(Expr e, int level)
        {
            list.Add(new NodeRef(list.Count, level, e));
            foreach (var c in e._children) Walk(c, level + 1);
        }
        Walk(this, 0);
        return list;
    }

    public Expr NodeAt(int index)
    {
        if ((uint)index >= (uint)Size)
            throw new ArgumentOutOfRangeException(nameof(index), $"node index {index} outside 0..{Size - 1}");
        var e = this;
        while (index > 0)
        {
            index--; // step past e itself
            foreach (var c in e._children)
            {
                if (index < c.Size) { e = c; goto found; }
                index -= c.Size;
            }
            throw new InvalidOperationException("unreachable: sizes inconsistent");
        found:;
        }
        return e;
    }

    /// <summary>Returns a new tree with the subtree at preorder index replaced; shares untouched subtrees.</summary>
    public Expr ReplaceAt(int index, Expr replacement)
    {
        ArgumentNullException.ThrowIfNull(replacement);
        if ((uint)index >= (uint)Size)
            throw new ArgumentOutOfRangeException(nameof(index), $"node index {index} outside 0..{Size - 1}");
        if (index == 0) return replacement;
        int offset = 1;
        var kids = (Expr[])_children.Clone();
        for (int i = 0; i < kids.Length; i++)
        {
            if (index < offset + kids[i].Size)
            {
                kids[i] = kids[i].ReplaceAt(index - offset, replacement);
                return new Expr(Op, kids);
            }
            offset += kids[i].Size;
        }
        throw new InvalidOperationException("unreachable: sizes inconsistent");
    }

    public override string ToString()
    {
        if (_text is not null) return _text;
        var sb = new StringBuilder();
        Print(sb);
        return _text = sb.ToString();
    }

    void Print(StringBuilder sb)
    {
        sb.Append(Ops.Name(Op));
        if (_children.Length == 0) return;
        sb.Append('(');
        for (int i = 0; i < _children.Length; i++)
        {
            if (i > 0) sb.Append(", ");
            _children[i].Print(sb);
        }
        sb.Append(')');
    }

    public bool Equals(Expr? other)
    {
        if (ReferenceEquals(this, other)) return true;
        if (other is null || other._hash != _hash || other.Op != Op || other.Size != Size) return false;
        for (int i = 0; i < _children.Length; i++)
            if (!_children[i].Equals(other._children[i])) return false;
        return true;
    }

    public override bool Equals(object? obj) => obj is Expr e && Equals(e);
    public override int GetHashCode() => _hash;

    /// <summary>SplitMix64's finalizer.</summary>
    static ulong Mix(ulong z)
    {
        z += 0x9E3779B97F4A7C15UL;
        z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9UL;
        z = (z ^ (z >> 27)) * 0x94D049BB133111EBUL;
        return z ^ (z >> 31);
    }
    public static bool operator ==(Expr? a, Expr? b) => a is null ? b is null : a.Equals(b);
    public static bool operator !=(Expr? a, Expr? b) => !(a == b);
}

// Tree generation and variation for the GP. Height, not Depth: the paper's bounds (3..5) are
// DEAP/gplearn tree heights, where a terminal has height 0 and sqr(W) has height 1, so
// Height(e) = e.Depth - 1 (Expr.Depth counts nodes on the longest path). Everything here uses Height.
using PrunerZero.Kernels;

namespace PrunerZero.Search;

public static class Trees
{
    /// <summary>DEAP/gplearn height: edges on the longest root-to-leaf path. W → 0, sqr(W) → 1.</summary>
    public static int Height(Expr e) => e.Depth - 1;

    static readonly IReadOnlyList<Op> Operators = [.. Ops.Unary, .. Ops.Binary];
    // DEAP's genGrow stops a branch early with probability terminals / (terminals + operators).
    static readonly double TerminalRatio = (double)Ops.Terminals.Count / Ops.All.Count;

    /// <summary>"Full": every branch reaches exactly the given height (operators above it, terminals at it).</summary>
    public static Expr Full(Rng rng, int height) => Build(rng, height, minLeafLevel: height, level: 0);

    /// <summary>
    /// "Grow": any primitive at each node; branches stop early (at or below minLeafLevel) with the
    /// terminal ratio, and at the latest at the given height. Height lies in [min(minLeafLevel, height), height].
    /// </summary>
    public static Expr Grow(Rng rng, int height, int minLeafLevel) => Build(rng, height, minLeafLevel, level: 0);

    static Expr Build(Rng rng, int height, int minLeafLevel, int level)
    {
        if (level >= height || (level >= minLeafLevel && rng.NextDouble() < TerminalRatio))
            return Expr.Leaf(rng.Pick(Ops.Terminals));
        var op = rng.Pick(Operators);
        if (Ops.Arity(op) == 1) return Expr.Unary(op, Build(rng, height, minLeafLevel, level + 1));
        var a = Build(rng, height, minLeafLevel, level + 1);
        var b = Build(rng, height, minLeafLevel, level + 1);
        return Expr.Binary(op, a, b);
    }

    /// <summary>
    /// Ramped half-and-half, deterministic in the slot: heights cycle through min..max, and alternate
    /// blocks of slots use full and grow (grow trees have height in [min, h]).
    /// </summary>
    public static Expr RampedHalfAndHalf(Rng rng, int slot, int minHeight, int maxHeight)
    {
        CheckBounds(minHeight, maxHeight);
        int n = maxHeight - minHeight + 1;
        int h = minHeight + slot % n;
        bool full = (slot / n) % 2 == 0;
        return full ? Full(rng, h) : Grow(rng, h, minHeight);
    }

    /// <summary>One-point subtree crossover: a random subtree of p1 is replaced by a random subtree of p2 (one child, as in Algorithm 1).</summary>
    public static Expr Crossover(Rng rng, Expr p1, Expr p2)
    {
        int i = rng.Next(p1.Size), j = rng.Next(p2.Size);
        return p1.ReplaceAt(i, p2.NodeAt(j));
    }

    /// <summary>
    /// Mutation at one uniformly chosen node: half the time a point mutation (the node's operator
    /// becomes a different one of the same arity; a terminal a different terminal), otherwise a subtree
    /// mutation (the node becomes a fresh grow tree whose height keeps the whole tree within maxHeight).
    /// </summary>
    public static Expr Mutate(Rng rng, Expr e, int maxHeight)
    {
        var nodes = e.Preorder();
        var at = nodes[rng.Next(nodes.Count)];
        if (rng.NextDouble() < 0.5)
        {
            var node = at.Node;
            var pool = Ops.Arity(node.Op) switch { 0 => Ops.Terminals, 1 => Ops.Unary, _ => Ops.Binary };
            var others = pool.Where(o => o != node.Op).ToArray();
            var op = rng.Pick(others);
            return e.ReplaceAt(at.Index, Expr.Create(op, [.. node.Children]));
        }
        int room = Math.Max(0, maxHeight - at.Level);
        int h = rng.Next(room + 1);
        return e.ReplaceAt(at.Index, Grow(rng, h, minLeafLevel: 0));
    }

    public static bool InBounds(Expr e, int minHeight, int maxHeight)
    {
        int h = Height(e);
        return h >= minHeight && h <= maxHeight;
    }

    /// <summary>
    /// The tallest trees the search generates: a full binary tree of height 10 has 2047 nodes, and a crossover
    /// child of two of them (height at most 20, at most 4094 nodes) still fits Expr.MaxDepth and Expr.MaxSize.
    /// </summary>
    public const int MaxSearchHeight = 10;

    internal static void CheckBounds(int minHeight, int maxHeight)
    {
        if (minHeight < 0 || maxHeight < minHeight)
            throw new ArgumentException($"height bounds need 0 <= min <= max, got min {minHeight}, max {maxHeight}");
        if (maxHeight > MaxSearchHeight)
            throw new ArgumentException($"max height {maxHeight} is above the search's limit of {MaxSearchHeight}");
    }
}

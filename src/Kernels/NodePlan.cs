// Turns an Expr into its composed node type (e.g. Mul<Sqr<WTerm>, Mms<GTerm>>) and, per call,
// into a node value whose reduction scalars (mms min/scale, zsn mean/invStd, div invNorm) have been
// computed by the back end's reduction pass, children before parents (dependency order).
using System.Reflection;
using PrunerZero.Kernels.Nodes;

namespace PrunerZero.Kernels;

/// <summary>Whole-matrix statistics of a subtree: min, max, Σv and Σ(v − center)², all over Count elements.</summary>
internal readonly record struct Stats(float Min, float Max, double Sum, double SumSq, long Count);

/// <summary>A back end's reduction pass: statistics of the subtree `plan`, evaluated with node value `value`.</summary>
internal interface IReducer
{
    Stats Reduce(NodePlan plan, object value, double center);
}

internal sealed class NodePlan
{
    public Expr Expr { get; }
    /// <summary>The composed struct type implementing INode.</summary>
    public Type Type { get; }
    readonly NodePlan[] _kids;
    readonly ConstructorInfo? _ctor;

    NodePlan(Expr expr, Type type, NodePlan[] kids)
    {
        Expr = expr;
        Type = type;
        _kids = kids;
        _ctor = kids.Length == 0 ? null : type.GetConstructors().Single();
    }

    public static NodePlan For(Expr e)
    {
        var kids = e.Children.Select(For).ToArray();
        Type Gen(Type def, params NodePlan[] args) => def.MakeGenericType(args.Select(a => a.Type).ToArray());
        var type = e.Op switch
        {
            Op.W => typeof(WTerm),
            Op.G => typeof(GTerm),
            Op.X => typeof(XTerm),
            Op.Sqr => Gen(typeof(Sqr<>), kids),
            Op.Pow => Gen(typeof(Pow<>), kids),
            Op.Neg => Gen(typeof(Neg<>), kids),
            Op.Abs => Gen(typeof(Abs<>), kids),
            Op.Tanh => Gen(typeof(Tanh<>), kids),
            Op.Skp => Gen(typeof(Skp<>), kids),
            Op.Log => Gen(typeof(Log<>), kids),
            Op.Sqrt => Gen(typeof(Sqrt<>), kids),
            Op.Exp => Gen(typeof(Exp<>), kids),
            Op.Mms => Gen(typeof(Mms<>), kids),
            Op.Zsn => Gen(typeof(Zsn<>), kids),
            Op.Add => Gen(typeof(Add<,>), kids),
            Op.Sub => Gen(typeof(Sub<,>), kids),
            Op.Mul => Gen(typeof(Mul<,>), kids),
            Op.Div => Gen(typeof(Div<>), kids[0]), // only 1/‖b‖ reaches the final pass
            Op.PDiv => Gen(typeof(PDiv<,>), kids),
            _ => throw new ArgumentException($"unknown op {e.Op}"),
        };
        return new NodePlan(e, type, kids);
    }

    /// <summary>Builds the boxed node value, running the reductions it needs (post-order).</summary>
    public object Build(IReducer r)
    {
        switch (Expr.Op)
        {
            case Op.W or Op.G or Op.X:
                return Activator.CreateInstance(Type)!;
            case Op.Mms:
            {
                var c = _kids[0].Build(r);
                var s = r.Reduce(_kids[0], c, 0);
                return _ctor!.Invoke([c, s.Min, MmsScale(s.Min, s.Max)]);
            }
            case Op.Zsn:
            {
                var c = _kids[0].Build(r);
                var (mean, invStd) = ZsnParams(r, _kids[0], c);
                return _ctor!.Invoke([c, (float)mean, invStd]);
            }
            case Op.Div:
            {
                var a = _kids[0].Build(r);
                var b = _kids[1].Build(r);
                var s = r.Reduce(_kids[1], b, 0);
                return _ctor!.Invoke([a, DivInvNorm(Math.Sqrt(s.SumSq))]);
            }
            default:
                return _ctor!.Invoke(_kids.Select(k => k.Build(r)).ToArray());
        }
    }

    /// <summary>1/(max − min); 0 when max == min so mms gives 0; NaN propagates when the range is NaN.</summary>
    internal static float MmsScale(float min, float max)
    {
        double range = (double)max - min;
        return range > 0 ? (float)(1.0 / range) : range == 0 ? 0f : float.NaN;
    }

    /// <summary>Two passes (mean, then Σ(v − mean)²) for a numerically sound population std.</summary>
    static (double Mean, float InvStd) ZsnParams(IReducer r, NodePlan kid, object value)
    {
        var s1 = r.Reduce(kid, value, 0);
        double mean = s1.Sum / s1.Count;
        var s2 = r.Reduce(kid, value, (float)mean);
        double std = Math.Sqrt(s2.SumSq / s2.Count);
        float inv = std > 0 ? (float)(1.0 / std) : std == 0 ? 0f : float.NaN;
        return (mean, inv);
    }

    /// <summary>1/‖b‖; 1 when ‖b‖ == 0 so div leaves its numerator unchanged.</summary>
    internal static float DivInvNorm(double norm) => norm > 0 ? (float)(1.0 / norm) : norm == 0 ? 1f : float.NaN;
}

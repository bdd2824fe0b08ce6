// Metric operators as composable value types. A tree such as mul(sqr(W), mms(G)) becomes the type
// Mul<Sqr<WTerm>, Mms<GTerm>>, built at run time with MakeGenericType; the .NET JIT (and ILGPU)
// specialise and inline the whole chain, so one fused pass evaluates the metric per element.
// Each node has a scalar Eval (used by ILGPU kernels; ILGPU maps MathF to device intrinsics) and a
// Vector256 Eval (the CPU production path). Reduction-bearing nodes (Mms, Zsn, Div) carry scalars
// precomputed by a reduction pass over their operand before the final element-wise pass.
using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;

namespace PrunerZero.Kernels.Nodes;

/// <summary>One metric node. w is the RAW weight (WTerm takes |w|), g the gradient magnitude, x the column statistic.</summary>
public interface INode
{
    float Eval(float w, float g, float x);
    Vector256<float> Eval(Vector256<float> w, Vector256<float> g, Vector256<float> x);
}

public readonly struct WTerm : INode
{
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public float Eval(float w, float g, float x) => MathF.Abs(w);
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public Vector256<float> Eval(Vector256<float> w, Vector256<float> g, Vector256<float> x) => Vector256.Abs(w);
}

public readonly struct GTerm : INode
{
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public float Eval(float w, float g, float x) => g;
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public Vector256<float> Eval(Vector256<float> w, Vector256<float> g, Vector256<float> x) => g;
}

public readonly struct XTerm : INode
{
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public float Eval(float w, float g, float x) => x;
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public Vector256<float> Eval(Vector256<float> w, Vector256<float> g, Vector256<float> x) => x;
}

public readonly struct Sqr<A>(A a) : INode where A : struct, INode
{
    public readonly A Arg = a;
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public float Eval(float w, float g, float x) { var v = Arg.Eval(w, g, x); return v * v; }
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public Vector256<float> Eval(Vector256<float> w, Vector256<float> g, Vector256<float> x) { var v = Arg.Eval(w, g, x); return v * v; }
}

/// <summary>pow: x², kept as its own op (the reference gptree has both sqr and pow) so printing round-trips.</summary>
public readonly struct Pow<A>(A a) : INode where A : struct, INode
{
    public readonly A Arg = a;
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public float Eval(float w, float g, float x) { var v = Arg.Eval(w, g, x); return v * v; }
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public Vector256<float> Eval(Vector256<float> w, Vector256<float> g, Vector256<float> x) { var v = Arg.Eval(w, g, x); return v * v; }
}

public readonly struct Neg<A>(A a) : INode where A : struct, INode
{
    public readonly A Arg = a;
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public float Eval(float w, float g, float x) => -Arg.Eval(w, g, x);
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public Vector256<float> Eval(Vector256<float> w, Vector256<float> g, Vector256<float> x) => -Arg.Eval(w, g, x);
}

public readonly struct Abs<A>(A a) : INode where A : struct, INode
{
    public readonly A Arg = a;
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public float Eval(float w, float g, float x) => MathF.Abs(Arg.Eval(w, g, x));
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public Vector256<float> Eval(Vector256<float> w, Vector256<float> g, Vector256<float> x) => Vector256.Abs(Arg.Eval(w, g, x));
}

public readonly struct Skp<A>(A a) : INode where A : struct, INode
{
    public readonly A Arg = a;
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public float Eval(float w, float g, float x) => Arg.Eval(w, g, x);
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public Vector256<float> Eval(Vector256<float> w, Vector256<float> g, Vector256<float> x) => Arg.Eval(w, g, x);
}

public readonly struct Tanh<A>(A a) : INode where A : struct, INode
{
    public readonly A Arg = a;
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public float Eval(float w, float g, float x) => MathF.Tanh(Arg.Eval(w, g, x));
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public Vector256<float> Eval(Vector256<float> w, Vector256<float> g, Vector256<float> x) => VMath.Tanh(Arg.Eval(w, g, x));
}

/// <summary>log(|x| + 0.001): the reference's protected log.</summary>
public readonly struct Log<A>(A a) : INode where A : struct, INode
{
    public readonly A Arg = a;
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public float Eval(float w, float g, float x) => MathF.Log(MathF.Abs(Arg.Eval(w, g, x)) + 0.001f);
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public Vector256<float> Eval(Vector256<float> w, Vector256<float> g, Vector256<float> x) => Vector256.Log(Vector256.Abs(Arg.Eval(w, g, x)) + Vector256.Create(0.001f));
}

/// <summary>sqrt(|x|): protected square root.</summary>
public readonly struct Sqrt<A>(A a) : INode where A : struct, INode
{
    public readonly A Arg = a;
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public float Eval(float w, float g, float x) => MathF.Sqrt(MathF.Abs(Arg.Eval(w, g, x)));
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public Vector256<float> Eval(Vector256<float> w, Vector256<float> g, Vector256<float> x) => Vector256.Sqrt(Vector256.Abs(Arg.Eval(w, g, x)));
}

/// <summary>exp(min(x, 100)). In float32 this overflows to +Inf above ~88.72, which makes the metric invalid.</summary>
public readonly struct Exp<A>(A a) : INode where A : struct, INode
{
    public readonly A Arg = a;
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public float Eval(float w, float g, float x) => MathF.Exp(MathF.Min(Arg.Eval(w, g, x), 100f));
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public Vector256<float> Eval(Vector256<float> w, Vector256<float> g, Vector256<float> x) => Vector256.Exp(Vector256.Min(Arg.Eval(w, g, x), Vector256.Create(100f)));
}

/// <summary>mms: (x − Min)·Scale with Scale = 1/(max − min) over the whole matrix; Scale = 0 when max == min (result 0).</summary>
public readonly struct Mms<A>(A a, float min, float scale) : INode where A : struct, INode
{
    public readonly A Arg = a;
    public readonly float Min = min;
    public readonly float Scale = scale;
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public float Eval(float w, float g, float x) => (Arg.Eval(w, g, x) - Min) * Scale;
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public Vector256<float> Eval(Vector256<float> w, Vector256<float> g, Vector256<float> x) => (Arg.Eval(w, g, x) - Vector256.Create(Min)) * Vector256.Create(Scale);
}

/// <summary>zsn: (x − Mean)·InvStd, population std over the whole matrix; InvStd = 0 when std == 0 (result 0).</summary>
public readonly struct Zsn<A>(A a, float mean, float invStd) : INode where A : struct, INode
{
    public readonly A Arg = a;
    public readonly float Mean = mean;
    public readonly float InvStd = invStd;
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public float Eval(float w, float g, float x) => (Arg.Eval(w, g, x) - Mean) * InvStd;
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public Vector256<float> Eval(Vector256<float> w, Vector256<float> g, Vector256<float> x) => (Arg.Eval(w, g, x) - Vector256.Create(Mean)) * Vector256.Create(InvStd);
}

/// <summary>div(a, b) = a / ‖b‖_F. Only the scalar 1/‖b‖ is needed in the final pass, so b is not part of the type.</summary>
public readonly struct Div<A>(A a, float invNorm) : INode where A : struct, INode
{
    public readonly A Arg = a;
    public readonly float InvNorm = invNorm;
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public float Eval(float w, float g, float x) => Arg.Eval(w, g, x) * InvNorm;
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public Vector256<float> Eval(Vector256<float> w, Vector256<float> g, Vector256<float> x) => Arg.Eval(w, g, x) * Vector256.Create(InvNorm);
}

public readonly struct Add<A, B>(A a, B b) : INode where A : struct, INode where B : struct, INode
{
    public readonly A Left = a;
    public readonly B Right = b;
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public float Eval(float w, float g, float x) => Left.Eval(w, g, x) + Right.Eval(w, g, x);
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public Vector256<float> Eval(Vector256<float> w, Vector256<float> g, Vector256<float> x) => Left.Eval(w, g, x) + Right.Eval(w, g, x);
}

public readonly struct Sub<A, B>(A a, B b) : INode where A : struct, INode where B : struct, INode
{
    public readonly A Left = a;
    public readonly B Right = b;
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public float Eval(float w, float g, float x) => Left.Eval(w, g, x) - Right.Eval(w, g, x);
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public Vector256<float> Eval(Vector256<float> w, Vector256<float> g, Vector256<float> x) => Left.Eval(w, g, x) - Right.Eval(w, g, x);
}

public readonly struct Mul<A, B>(A a, B b) : INode where A : struct, INode where B : struct, INode
{
    public readonly A Left = a;
    public readonly B Right = b;
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public float Eval(float w, float g, float x) => Left.Eval(w, g, x) * Right.Eval(w, g, x);
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public Vector256<float> Eval(Vector256<float> w, Vector256<float> g, Vector256<float> x) => Left.Eval(w, g, x) * Right.Eval(w, g, x);
}

/// <summary>pdiv: element-wise protected division, a / b, or a where |b| &lt; 1e-12.</summary>
public readonly struct PDiv<A, B>(A a, B b) : INode where A : struct, INode where B : struct, INode
{
    public readonly A Left = a;
    public readonly B Right = b;

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public float Eval(float w, float g, float x)
    {
        float l = Left.Eval(w, g, x), r = Right.Eval(w, g, x);
        return MathF.Abs(r) < PDivEps.Value ? l : l / r;
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public Vector256<float> Eval(Vector256<float> w, Vector256<float> g, Vector256<float> x)
    {
        var l = Left.Eval(w, g, x);
        var r = Right.Eval(w, g, x);
        return Vector256.ConditionalSelect(Vector256.LessThan(Vector256.Abs(r), Vector256.Create(PDivEps.Value)), l, l / r);
    }
}

internal static class PDivEps { public const float Value = 1e-12f; }

/// <summary>Vector math that Vector256 lacks.</summary>
internal static class VMath
{
    /// <summary>
    /// tanh via exp: sign(x)·(1 − e)/(1 + e), e = exp(−2|x|); for |x| &lt; 0.0625 an odd Taylor
    /// polynomial avoids the cancellation in 1 − e. Agrees with MathF.Tanh to ~1e-6 relative.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector256<float> Tanh(Vector256<float> v)
    {
        var ax = Vector256.Abs(v);
        var e = Vector256.Exp(ax * Vector256.Create(-2f));
        var one = Vector256<float>.One;
        var big = (one - e) / (one + e);
        var x2 = ax * ax;
        var small = ax + ax * x2 * (Vector256.Create(-1f / 3f) + x2 * Vector256.Create(2f / 15f));
        var r = Vector256.ConditionalSelect(Vector256.LessThan(ax, Vector256.Create(0.0625f)), small, big);
        return Vector256.CopySign(r, v);
    }
}

using TorchSharp;
using static TorchSharp.torch;

namespace PrunerZero.Runtime;

/// <summary>
/// Tensor arithmetic that leaves no TorchSharp Scalar to the .NET finalizer. TorchSharp 0.107 makes a Scalar it never
/// disposes in every implicit number → Scalar conversion (<c>t * 0.5</c>, <c>t / d</c>, <c>t.pow(2)</c>) and in
/// <c>a + b</c>, <c>a.add(b)</c>, <c>a.add_(b)</c>, <c>square()</c> (an alpha or exponent of its own); a finalizer
/// free of one can run while an op reads it. Here every Scalar is disposed or lives for the process; the tests'
/// ScalarLeakScanner finds any call that does otherwise. Results are bit-identical to the operators they replace.
/// </summary>
public static class TorchOps
{
    /// <summary>The alpha of every add: one Scalar for the life of the process, never finalized.</summary>
    static readonly Scalar One = 1.ToScalar();

    /// <summary>a + b.</summary>
    public static Tensor Plus(this Tensor a, Tensor b) => a.add(b, One);

    /// <summary>a += b, in place.</summary>
    public static Tensor PlusInPlace(this Tensor a, Tensor b) => a.add_(b, One);

    /// <summary>f applied with v as a Scalar that is disposed when f returns.</summary>
    static Tensor With(double v, Func<Scalar, Tensor> f)
    {
        using var s = v.ToScalar();
        return f(s);
    }

    /// <summary>a + v.</summary>
    public static Tensor Plus(this Tensor a, double v) => With(v, s => a.add(s, One));

    /// <summary>a − v.</summary>
    public static Tensor Minus(this Tensor a, double v) => With(v, a.sub);

    /// <summary>a · v.</summary>
    public static Tensor Times(this Tensor a, double v) => With(v, a.mul);

    /// <summary>a ·= v, in place.</summary>
    public static Tensor TimesInPlace(this Tensor a, double v) => With(v, a.mul_);

    /// <summary>a / v.</summary>
    public static Tensor DividedBy(this Tensor a, double v) => With(v, s => a.div(s));

    /// <summary>a ** e.</summary>
    public static Tensor Pow(this Tensor a, double e) => With(e, a.pow);

    /// <summary>v ** a, element-wise (v as a 0-dim float64 tensor, which takes a's dtype in the op, as a Python float does).</summary>
    public static Tensor PowOf(double v, Tensor a)
    {
        using var t = tensor(v);
        return pow(t, a);
    }

    /// <summary>a², as a · a (what libtorch's pow(a, 2) computes).</summary>
    public static Tensor Squared(this Tensor a) => a.mul(a);

    /// <summary>a == v, element-wise (a bool tensor).</summary>
    public static Tensor EqualTo(this Tensor a, double v) => With(v, a.eq);

    /// <summary>Tensor.fill_ with a disposed Scalar.</summary>
    public static Tensor FillInPlace(this Tensor a, double v) => With(v, a.fill_);

    /// <summary>arange(start, stop, step) of dtype.</summary>
    public static Tensor Arange(long start, long stop, long step = 1, ScalarType dtype = ScalarType.Int64)
    {
        using var a = start.ToScalar();
        using var b = stop.ToScalar();
        using var c = step.ToScalar();
        return arange(a, b, c, dtype);
    }
}

// Deterministic random streams. Every random decision of the search draws from a stream named by
// (seed, iteration, slot, attempt), so a resumed run regenerates exactly the same children as an
// uninterrupted one, and a child never depends on evaluation timing. SplitMix64 rather than
// System.Random so the sequence is ours and cannot change with the runtime.
namespace PrunerZero.Search;

public sealed class Rng
{
    ulong _state;

    public Rng(ulong seed) => _state = seed;

    /// <summary>A stream for one (seed, iteration, slot, attempt); different tuples give independent streams.</summary>
    public static Rng For(long seed, long iteration, long slot, long attempt)
    {
        ulong h = Mix((ulong)seed ^ 0x5EA2C4_0000_0001UL);
        h = Mix(h ^ (ulong)iteration);
        h = Mix(h ^ (ulong)slot * 0x9E3779B97F4A7C15UL);
        h = Mix(h ^ (ulong)attempt * 0xC2B2AE3D27D4EB4FUL);
        return new Rng(h);
    }

    static ulong Mix(ulong z)
    {
        z += 0x9E3779B97F4A7C15UL;
        z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9UL;
        z = (z ^ (z >> 27)) * 0x94D049BB133111EBUL;
        return z ^ (z >> 31);
    }

    public ulong NextULong()
    {
        _state += 0x9E3779B97F4A7C15UL;
        ulong z = _state;
        z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9UL;
        z = (z ^ (z >> 27)) * 0x94D049BB133111EBUL;
        return z ^ (z >> 31);
    }

    /// <summary>Uniform in [0, n). Rejection sampling so there is no modulo bias.</summary>
    public int Next(int n)
    {
        if (n <= 0) throw new ArgumentOutOfRangeException(nameof(n), $"n must be positive, got {n}");
        ulong un = (ulong)n, limit = ulong.MaxValue - ulong.MaxValue % un;
        ulong v;
        do v = NextULong(); while (v >= limit);
        return (int)(v % un);
    }

    /// <summary>Uniform in [0, 1) with 53 random bits.</summary>
    public double NextDouble() => (NextULong() >> 11) * (1.0 / (1UL << 53));

    public T Pick<T>(IReadOnlyList<T> items) => items[Next(items.Count)];
}

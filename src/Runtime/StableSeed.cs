namespace PrunerZero.Runtime;

/// <summary>
/// Seeds derived from a user's seed that are the same in every process, on every machine and runtime version.
/// <see cref="System.HashCode"/> (and string.GetHashCode) are randomized per process, so they never derive a seed.
/// </summary>
public static class StableSeed
{
    /// <summary>SplitMix64's finalizer: a bijective, well-mixed 64-bit hash.</summary>
    public static ulong Mix(ulong z)
    {
        z += 0x9E3779B97F4A7C15UL;
        z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9UL;
        z = (z ^ (z >> 27)) * 0x94D049BB133111EBUL;
        return z ^ (z >> 31);
    }

    /// <summary>A 64-bit seed for the stream <paramref name="stream"/> of <paramref name="seed"/>.</summary>
    public static ulong Of(long seed, long stream) => Mix(Mix((ulong)seed) ^ ((ulong)stream * 0xC2B2AE3D27D4EB4FUL));

    /// <summary>A non-negative int seed for <see cref="System.Random(int)"/> (whose seeded sequence is fixed by .NET).</summary>
    public static int ForRandom(long seed, long stream) => (int)(Of(seed, stream) & 0x7FFF_FFFF);
}

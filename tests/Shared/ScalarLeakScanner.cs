using System.Reflection;
using System.Reflection.Emit;
using TorchSharp;

namespace PrunerZero.Tests;

/// <summary>
/// Finds, in compiled code, every call that makes a TorchSharp Scalar nobody disposes. TorchSharp 0.107 converts
/// numbers to Scalars implicitly (<c>t * 0.5</c>, <c>t.pow(2)</c>) and makes some itself that it never disposes
/// (<c>a + b</c> is <c>a.add(b, 1)</c>): each is freed by the .NET finalizer, which may run while an op reads it.
/// A "leaker" is a TorchSharp method whose body calls <see cref="Scalar"/>'s implicit conversion or a
/// <c>ToScalar</c> without ever calling <c>Scalar.Dispose</c>, or calls another leaker; a scanned method that calls
/// a leaker is reported. Reads IL through reflection; runs nothing.
/// </summary>
public static class ScalarLeakScanner
{
    static readonly Dictionary<short, OpCode> OpCodesByValue = typeof(OpCodes)
        .GetFields(BindingFlags.Public | BindingFlags.Static)
        .Select(f => (OpCode)f.GetValue(null)!)
        .ToDictionary(o => o.Value);

    const BindingFlags All = BindingFlags.Public | BindingFlags.NonPublic | BindingFlags.Instance | BindingFlags.Static | BindingFlags.DeclaredOnly;

    static IEnumerable<MethodBase> Methods(Assembly a)
    {
        Type[] types;
        try { types = a.GetTypes(); }
        catch (ReflectionTypeLoadException e) { types = e.Types.Where(t => t != null).ToArray()!; }
        foreach (var t in types)
        {
            foreach (var m in t.GetMethods(All)) yield return m;
            foreach (var c in t.GetConstructors(All)) yield return c;
        }
    }

    /// <summary>The methods and constructors <paramref name="m"/>'s IL calls (call, callvirt, newobj, ldftn).</summary>
    public static IEnumerable<MethodBase> Callees(MethodBase m)
    {
        byte[]? il;
        try { il = m.GetMethodBody()?.GetILAsByteArray(); }
        catch (Exception e) when (e is BadImageFormatException or InvalidOperationException or NotSupportedException) { il = null; }
        if (il == null) yield break;
        Type[]? typeArgs = m.DeclaringType is { IsGenericType: true } dt ? dt.GetGenericArguments() : null;
        Type[]? methodArgs = m is MethodInfo { IsGenericMethod: true } mi ? mi.GetGenericArguments() : null;
        for (int i = 0; i < il.Length;)
        {
            short value = il[i] == 0xFE && i + 1 < il.Length ? (short)(0xFE00 | il[i + 1]) : il[i];
            if (!OpCodesByValue.TryGetValue(value, out var op)) yield break;   // not IL we can walk: stop, never guess
            i += op.Size;
            if (op.OperandType == OperandType.InlineMethod && i + 4 <= il.Length)
            {
                int token = BitConverter.ToInt32(il, i);
                MethodBase? callee = null;
                try { callee = m.Module.ResolveMethod(token, typeArgs, methodArgs); }
                catch (Exception e) when (e is ArgumentException or BadImageFormatException or TypeLoadException or FileNotFoundException or MissingMethodException) { }
                if (callee != null) yield return callee;
            }
            i += op.OperandType switch
            {
                OperandType.InlineNone => 0,
                OperandType.ShortInlineBrTarget or OperandType.ShortInlineI or OperandType.ShortInlineVar => 1,
                OperandType.InlineVar => 2,
                OperandType.InlineI8 or OperandType.InlineR => 8,
                OperandType.InlineSwitch => 4 + 4 * BitConverter.ToInt32(il, i),
                _ => 4,
            };
        }
    }

    static bool Deliberate(Type? t)
    {
        for (; t != null; t = t.DeclaringType)
            if (t.IsDefined(typeof(DeliberateFinalizerUse), inherit: false)) return true;
        return false;
    }

    static bool IsScalarMaker(MethodBase m) =>
        (m.DeclaringType == typeof(Scalar) && m.Name == "op_Implicit")
        || (m.Name == "ToScalar" && (m.DeclaringType == typeof(ScalarExtensionMethods) || m.DeclaringType == typeof(torch.Tensor)));

    // `using var s = x.ToScalar()` compiles to a call of IDisposable.Dispose.
    static bool IsScalarDispose(MethodBase m) => (m.DeclaringType == typeof(Scalar) || m.DeclaringType == typeof(IDisposable)) && m.Name == "Dispose";

    static string Key(MethodBase m) => $"{m.DeclaringType?.FullName}::{m}";

    static HashSet<string>? leakers;

    /// <summary>TorchSharp's leakers (computed once: a fixpoint over TorchSharp's own call graph).</summary>
    public static HashSet<string> TorchSharpLeakers()
    {
        if (leakers != null) return leakers;
        var callers = new Dictionary<string, List<string>>();
        var found = new HashSet<string>();
        var work = new Queue<string>();
        foreach (var m in Methods(typeof(torch).Assembly))
        {
            var callees = Callees(m).ToList();
            string k = Key(m);
            foreach (var c in callees)
            {
                string ck = Key(c);
                if (!callers.TryGetValue(ck, out var list)) callers[ck] = list = [];
                list.Add(k);
            }
            if (callees.Any(IsScalarMaker) && !callees.Any(IsScalarDispose) && found.Add(k)) work.Enqueue(k);
        }
        while (work.Count > 0)
            if (callers.TryGetValue(work.Dequeue(), out var list))
                foreach (var c in list)
                    if (found.Add(c)) work.Enqueue(c);
        return leakers = found;
    }

    /// <summary>
    /// "Caller calls Callee" for every call in <paramref name="assembly"/> that leaves a Scalar to the finalizer:
    /// an implicit conversion, a call to a TorchSharp leaker, or a ToScalar in a method that disposes no Scalar
    /// (a static constructor may keep Scalars for the life of the process).
    /// </summary>
    public static IEnumerable<string> Leaks(Assembly assembly)
    {
        var bad = TorchSharpLeakers();
        foreach (var m in Methods(assembly))
        {
            if (Deliberate(m.DeclaringType)) continue;
            var callees = Callees(m).ToList();
            bool disposes = m is ConstructorInfo { IsStatic: true } || callees.Any(IsScalarDispose);
            foreach (var c in callees)
            {
                bool leak = IsScalarMaker(c) ? c.Name == "op_Implicit" || !disposes : bad.Contains(Key(c));
                if (leak) yield return $"{m.DeclaringType?.FullName}.{m.Name} calls {c.DeclaringType?.Name}.{c}";
            }
        }
    }
}

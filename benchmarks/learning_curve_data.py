"""The bundled detectors' training history, transcribed from the docs at commit 726d2a0.

`M:n` is line n of docs/models.md and `C:n` of docs/ct.md at that commit; each row's `ref` names
the lines its test-set numbers and per-epoch seconds are printed on, and
benchmarks/learning_curve.py checks that they are. Fields:

  v, kind    version; net (network training only), recipe (loss/crop change), thresh (same
             weights, new threshold), arch (other network or input), start (other
             initialisation), fresh (same compute as a sibling, new crops), sl (second look)
  kept, par  bundled at some point; the version whose weights it continued (None: scratch)
  scans      training-set size at this stage (CT: volumes); uniq: CT volumes seen so far
  steps      cumulative optimisation steps at batch 16, or add_steps on top of par's
  wall, thr  cumulative CPU wall minutes and thread-minutes (early stages, from the "Exact
             commands" table M:2008-2049); later stages give secs (seconds per epoch, checked)
             or add_min (unchecked, commented), thr_x (torch threads) and add_gpu (H200 minutes)
  ap2, pd2   test2 AP50 and Pd at exactly Pfa 0.05 (2-D: 2,000 scans; CT: 400 volumes)
  ap4        2-D test (400 scans) AP50; pdr, pfr: Pd and Pfa there at the release threshold
  ap100      CT test (100) 3-D AP; ap1k/pd1k calib2 + test2 (1,000); ap3/pd3 test3 (800)

A value the docs print only as a difference to another version is a `Diff(base, delta)`; the
check looks for the delta on the cited lines and the value is base's plus delta.
Steps and the early cumulative minutes are sums of the table's epochs and are not checked.
"""

from typing import NamedTuple


class Diff(NamedTuple):
    base: str  # version in the same list
    delta: float


# colour 2.0.0 -> 2.2.0: 150 steps per epoch on 2,400 scans (M:2012-2014)
COLOUR = [
    dict(v="2.0.0", kind="net", kept=True, par=None, scans=2400, steps=30*150, wall=69, thr=69,
        ap4=0.172, pdr=0.232, pfr=0.090, ref="M:2012 (30 ep, 69 min); M:2094"),
    dict(v="2.1.0", kind="net", kept=True, par="2.0.0", scans=2400, steps=40*150, wall=85, thr=85,
        ap4=0.205, pdr=0.242, pfr=0.071, ref="M:2013; M:2074"),
    dict(v="2.2.0", kind="recipe", kept=True, par="2.1.0", scans=2400, steps=89*150, wall=85+82,
        thr=85+2*82, ap4=0.317, pdr=0.268, pfr=0.033,
        ref="M:2014 (89 ep, 85+82 min, 2 threads; hard negatives + object crops); M:2073"),
    dict(v="2.2.1", kind="thresh", kept=True, par="2.2.0", scans=2400, steps=89*150, wall=167,
        thr=249, ap4=0.317, pdr=0.268, pfr=0.038, ref="M:2072 (threshold only, calib 1,000)"),
    dict(v="2.3.0", kind="net", kept=True, par="2.2.0", scans=4800, steps=89*150+6*300,
        wall=167+36, thr=249+36, ap4=0.360, pdr=0.311, pfr=0.057, ref="M:2021; M:2071"),
    dict(v="2.4.0", kind="net", kept=True, par="2.3.0", scans=9600, steps=89*150+6*300+5*600,
        wall=203+49, thr=285+49, ap2=0.375, pd2=0.376, ap4=0.399, pdr=0.321, pfr=0.048,
        ref="M:2024; M:1481, M:1490; M:2070"),
    dict(v="2.5.0", kind="net", kept=True, par="2.4.0", scans=14400,
        steps=89*150+6*300+5*600+3*900, wall=252+40, thr=334+40, ap2=0.395, pd2=0.394, ap4=0.413,
        pdr=0.405, pfr=0.057, ref="M:2023; M:1482, M:1491; M:2069"),
    dict(v="2.6.0", kind="net", kept=True, par="2.5.0", scans=19200,
        steps=89*150+6*300+5*600+3*900+3*1200, wall=292+47, thr=374+47, ap2=0.421, pd2=0.423,
        ap4=0.449, pdr=0.437, pfr=0.067,
        ref="M:2022; M:1309, M:1319; M:2068 (threshold now on calib+calib2)"),
    dict(v="2.7.0", kind="net", kept=True, par="2.6.0", scans=24000, steps=None, add_steps=3*1500,
        secs=(1057, 964, 1037), thr_x=1, ap2=0.463, pd2=0.466, ap4=0.496, pdr=0.474, pfr=0.043,
        ref="M:1155-1159 (3x1500, 1,057/964/1,037 s); M:1167, M:1181; M:2067"),
    dict(v="2.8.0", kind="net", kept=False, par="2.7.0", scans=24000, add_steps=2*1500,
        secs=(1679, 2302), thr_x=1, ap2=0.457, pd2=0.453, ap4=0.500, pdr=0.505, pfr=0.038,
        ref="M:1108-1111 (2 ep, 1,679/2,302 s); M:1126, M:1137; M:2066"),
    dict(v="2.9.0", kind="net", kept=True, par="2.7.0", scans=24000, add_steps=3*1500,
        secs=(1199, 967, 944), thr_x=1, ap2=0.484, pd2=0.484, ap4=0.507, pdr=0.516, pfr=0.052,
        ref="M:979-984; M:1000, M:1015; M:2064"),
    dict(v="2.10.0", kind="net", kept=False, par="2.9.0", scans=24000, add_steps=3*1500,
        secs=(1322, 1230, 1089), thr_x=1, ap2=0.498, pd2=0.476, ap4=0.514, pdr=0.547, pfr=0.052,
        ref="M:881; M:898, M:911; M:2065"),
    dict(v="2.11.0", kind="net", kept=True, par="2.10.0", scans=24000, add_steps=3*1500,
        secs=(1077, 930, 924), thr_x=1, ap2=0.514, pd2=0.503, ap4=0.523, pdr=0.558, pfr=0.071,
        ref="M:713; M:721, M:732; M:2063"),
    dict(v="2.12.0", kind="net", kept=False, par="2.11.0", scans=24000, add_steps=3*1500,
        secs=(1530, 1259, 1032), thr_x=1, ap2=0.518, pd2=Diff("2.11.0", -0.008), ap4=0.517,
        ref="M:584; M:594 (-0.008 vs 2.11.0), M:595"),
    dict(v="2.13.0", kind="net", kept=False, par="2.12.0", scans=24000, add_steps=2*1500,
        secs=(1138, 940), thr_x=1, ap2=0.515, pd2=Diff("2.11.0", -0.012),
        ref="M:570-574 (-0.012 vs 2.11.0, AP50 0.515)"),
    dict(v="2.16.0", kind="fresh", kept=True, par="2.10.0", scans=24000, add_steps=3*1500,
        secs=(1390, 1053, 1250), thr_x=1, ap2=0.522, pd2=0.522, ap4=0.523, pdr=0.558, pfr=0.057,
        ref="M:146-150 (sibling of 2.11.0, new crops); M:157, M:163; M:2062"),
    dict(v="2.17.0", kind="fresh", kept=False, par="2.16.0", scans=24000, add_steps=2*1500,
        secs=(1327, 897), thr_x=1, ap2=0.524, pd2=Diff("2.16.0", +0.002), ap4=0.532,
        ref="M:176-181; M:190, M:192"),
]

# gray 2.3.0: epoch 0 on 1 thread, the rest on 2 (M:1512-1514): ~6 min x1 + ~29 min x2
GRAY = [
    dict(v="2.0.0", kind="net", kept=True, par=None, scans=2400, steps=10*150, wall=26, thr=26,
        ap4=0.085, pdr=0.105, pfr=0.043, ref="M:2049; M:2109"),
    dict(v="2.1.0", kind="recipe", kept=True, par="2.0.0", scans=2400, steps=29*150, wall=26+31,
        thr=26+2*31, ap4=0.184, pdr=0.211, pfr=0.043,
        ref="M:2019 (29 ep, 26+31 min, 2 threads; hard negatives); M:2108"),
    dict(v="2.1.1", kind="thresh", kept=True, par="2.1.0", scans=2400, steps=29*150, wall=57,
        thr=88, ap4=0.184, pdr=0.253, pfr=0.062, ref="M:2107 (threshold only)"),
    dict(v="2.2.0", kind="net", kept=True, par="2.1.0", scans=2400, steps=40*150, wall=57+13,
        thr=88+2*13, ap4=0.216, pdr=0.258, pfr=0.067,
        ref="M:2048 (40 ep, +13 min, 2 threads); M:2106"),
    dict(v="2.3.0", kind="net", kept=True, par="2.2.0", scans=4800, steps=40*150+6*300, wall=70+35,
        thr=114+64, ap2=0.222, pd2=0.274, ap4=0.224, pdr=0.316, pfr=0.086,
        ref="M:2046 (35 min); M:1509-1514; M:1403, M:1410; M:2105"),
    dict(v="2.4.0", kind="net", kept=True, par="2.3.0", scans=14400, steps=40*150+6*300+3*900,
        wall=105+34, thr=178+34, ap2=0.276, pd2=0.285, ap4=0.295, pdr=0.353, pfr=0.038,
        ref="M:2047; M:1404, M:1411; M:2104"),
    dict(v="2.5.0", kind="net", kept=True, par="2.4.0", scans=19200,
        steps=40*150+6*300+3*900+3*1200, wall=139+44, thr=212+44, ap2=0.331, pd2=0.359, ap4=0.355,
        pdr=0.363, pfr=0.057, ref="M:2046; M:1275, M:1285; M:2103"),
    dict(v="2.6.0", kind="net", kept=True, par="2.5.0", scans=24000, add_steps=3*1500,
        secs=(927, 858, 902), thr_x=1, ap2=0.423, pd2=0.435, ap4=0.443, pdr=0.447, pfr=0.024,
        ref="M:1155-1159; M:1171, M:1184; M:2102"),
    dict(v="2.7.0", kind="net", kept=True, par="2.6.0", scans=24000, add_steps=3*1500,
        secs=(857, 947, 647), thr_x=2, ap2=0.466, pd2=0.471, ap4=0.471, pdr=0.511, pfr=0.071,
        ref="M:1065-1070 (2 threads); M:1078, M:1088; M:2101"),
    dict(v="2.8.0", kind="net", kept=True, par="2.7.0", scans=24000, add_steps=3*1500,
        secs=(1036, 960, 996), thr_x=1, ap2=0.490, pd2=0.499, ap4=0.505, pdr=0.532, pfr=0.071,
        ref="M:935-941; M:948, M:958; M:2100"),
    dict(v="2.9.0", kind="net", kept=True, par="2.8.0", scans=24000, add_steps=3*1500,
        secs=(967, 833, 863), thr_x=1, ap2=0.504, pd2=0.527, ap4=0.517, pdr=0.526, pfr=0.048,
        ref="M:819-820; M:833, M:847; M:2099"),
    dict(v="2.10.0", kind="net", kept=True, par="2.9.0", scans=24000, add_steps=3*1500,
        secs=(1010, 1008, 860), thr_x=1, ap2=0.512, pd2=0.528, ap4=0.525, pdr=0.579, pfr=0.057,
        ref="M:757-758; M:768, M:782; M:2098"),
    dict(v="2.11.0", kind="net", kept=True, par="2.10.0", scans=24000, add_steps=2*1500,
        secs=(930, 835), thr_x=1, ap2=0.522, pd2=0.564, ap4=0.517, pdr=0.558, pfr=0.052,
        ref="M:623; M:631, M:641; M:2097"),
    dict(v="2.12.0", kind="net", kept=False, par="2.11.0", scans=24000, add_steps=2*1500,
        secs=(1047, 932), thr_x=1, ap2=0.524, pd2=Diff("2.11.0", +0.004), ap4=0.511,
        ref="M:599-601; M:596, M:597"),
    dict(v="2.15.0", kind="net", kept=False, par="2.12.0", scans=24000, add_steps=2*1500,
        secs=(1206, 835), thr_x=1, ap2=0.528, pd2=Diff("2.11.0", +0.000), ref="M:343-347; M:354"),
    dict(v="2.17.0", kind="fresh", kept=True, par="2.12.0", scans=24000, add_steps=2*1500,
        secs=(946, 555), thr_x=2, ap2=0.534, pd2=0.564+0.013, ap4=0.534, pdr=0.589, pfr=0.048,
        ref="M:250-252 (sibling of 2.15.0, new crops, 2 threads); M:263, M:284, M:306-307;"
        " M:2096"),
    dict(v="2.19.0", kind="fresh", kept=False, par="2.17.0", scans=24000, add_steps=2*1500,
        secs=(1197, 805), thr_x=1, ap2=0.540, pd2=Diff("2.17.0", -0.002), ap4=0.532,
        ref="M:176-180; M:187, M:189"),
    dict(v="2.14.0 (wide)", kind="arch", kept=False, par="2.11.0", scans=24000, add_steps=2*1500,
        secs=(1124, 999), thr_x=1, ap2=0.526, pd2=Diff("2.11.0", +0.021),
        ref="M:311-334 (0.71 M params)"),
    dict(v="2.16.0 (wide)", kind="arch", kept=False, par="2.14.0 (wide)", scans=24000,
        add_steps=2*1500, secs=(1233, 1031), thr_x=1, ap2=0.527, pd2=Diff("2.11.0", +0.008),
        ref="M:343-355"),
    dict(v="2.13.0 (from dual)", kind="start", kept=False, par=None, scans=24000, ap2=0.517,
        pd2=Diff("2.11.0", -0.001), ref="M:468-480"),
    dict(v="2.18.0 (SL)", kind="sl", kept=False, par="2.17.0", scans=24000, ap2=0.525,
        pd2=Diff("2.17.0", +0.023), ref="M:134-142"),
]

COL220_STEPS = 89 * 150  # colour 2.2.0, where dual 3.0.0 started (M:2018)
# dual 3.6.0 ran on an H200: 3 x 375 steps x 64 crops = 72,000 crops = 4,500 batch-16 steps
# dual 3.14.0-3.17.0 continue gray 2.11.0's run, 1 epoch each
DUAL = [
    dict(v="2.0.0", kind="net", kept=True, par=None, scans=2400, steps=24*150, wall=75, thr=75,
        ap4=0.144, pdr=0.121, pfr=0.029, ref="M:2015; M:2095"),
    dict(v="2.1.0", kind="net", kept=True, par="2.0.0", scans=2400, steps=34*150, wall=91, thr=91,
        ap4=0.176, pdr=0.153, pfr=0.057, ref="M:2016; M:2093"),
    dict(v="2.2.0", kind="recipe", kept=True, par="2.1.0", scans=2400, steps=52*150, wall=91+31,
        thr=91+2*31, ap4=0.198, pdr=0.147, pfr=0.033, ref="M:2017 (2 threads); M:2092"),
    dict(v="3.0.0", kind="arch", kept=True, par="colour 2.2.0", scans=2400,
        steps=COL220_STEPS+44*150, wall=167+84, thr=249+2*84, ap4=0.413, pdr=0.411, pfr=0.062,
        ref="M:2018 (6 channels, init colour 2.2.0; 84 min, 2 threads); M:2091"),
    dict(v="3.1.0", kind="net", kept=True, par="3.0.0", scans=2400, steps=COL220_STEPS+76*150,
        wall=251+80, thr=417+80, ap4=0.422, pdr=0.416, pfr=0.033,
        ref="M:2020 (+80 min, 1 thread; threshold now on calib); M:2090"),
    dict(v="3.2.0", kind="net", kept=True, par="3.1.0", scans=4800,
        steps=COL220_STEPS+76*150+8*300, wall=331+51, thr=497+51, ap4=0.464, pdr=0.437, pfr=0.033,
        ref="M:2025; M:2089"),
    dict(v="3.3.0", kind="net", kept=True, par="3.2.0", scans=9600,
        steps=COL220_STEPS+76*150+8*300+3*600, wall=382+31, thr=548+31, ap2=0.439, pd2=0.422,
        ap4=0.481, pdr=0.489, pfr=0.057, ref="M:2045; M:1438, M:1449; M:2088"),
    dict(v="3.4.0", kind="net", kept=True, par="3.3.0", scans=14400,
        steps=COL220_STEPS+76*150+8*300+3*600+3*900, wall=413+43, thr=579+43, ap2=0.447, pd2=0.431,
        ap4=0.485, pdr=0.516, pfr=0.067, ref="M:2026; M:1439, M:1450; M:2087"),
    dict(v="3.5.0", kind="net", kept=True, par="3.4.0", scans=19200,
        steps=COL220_STEPS+76*150+8*300+3*600+3*900+3*1200, wall=456+49, thr=622+49, ap2=0.467,
        pd2=0.448, ap4=0.489, pdr=0.526, pfr=0.067, ref="M:2027; M:1353, M:1364; M:2086"),
    dict(v="3.6.0", kind="net", kept=True, par="3.5.0", scans=24000, add_steps=72000//16, secs=(),
        thr_x=1, add_gpu=4.22, ap2=0.486, pd2=0.452, ap4=0.512, pdr=0.516, pfr=0.052,
        ref="M:1218-1222 (H200, batch 64, 72,000 crops, 63/66/56 s of steps); M:1230,"
        " M:1241; M:2085"),
    dict(v="3.7.0", kind="net", kept=True, par="3.6.0", scans=24000, add_steps=2*1500,
        secs=(1950, 2226), thr_x=1, ap2=0.492, pd2=0.472, ap4=0.550, pdr=0.537, pfr=0.062,
        ref="M:1108-1111, M:2043 (69 min); M:1122, M:1134; M:2084"),
    dict(v="3.8.0", kind="net", kept=True, par="3.7.0", scans=24000, add_steps=3*1500,
        secs=(1305, 1077, 1027), thr_x=1, ap2=0.506, pd2=0.484, ap4=0.554, pdr=0.553, pfr=0.052,
        ref="M:983-984; M:996, M:1011; M:2083"),
    dict(v="3.9.0", kind="net", kept=True, par="3.8.0", scans=24000, add_steps=3*1500,
        secs=(1427, 1302, 1000), thr_x=1, ap2=0.518, pd2=0.511, ap4=0.560, pdr=0.558, pfr=0.067,
        ref="M:881; M:894, M:908; M:2082"),
    dict(v="3.10.0", kind="net", kept=True, par="3.9.0", scans=24000, add_steps=3*1500,
        secs=(1196, 948, 954), thr_x=1, ap2=0.525, pd2=0.525, ap4=0.560, pdr=0.547, pfr=0.043,
        ref="M:819; M:829, M:844; M:2081"),
    dict(v="3.11.0", kind="net", kept=False, par="3.10.0", scans=24000, add_steps=3*1500,
        secs=(1230, 1147, 1115), thr_x=1, ap2=0.529, pd2=0.513, ap4=0.551, pdr=0.553, pfr=0.052,
        ref="M:757-758; M:772, M:785; M:2080"),
    dict(v="3.12.0", kind="net", kept=True, par="3.11.0", scans=24000, add_steps=3*1500,
        secs=(1160, 952, 956), thr_x=1, ap2=0.532, pd2=0.538, ap4=0.560, pdr=0.563, pfr=0.057,
        ref="M:664; M:673, M:684; M:2079"),
    dict(v="3.13.0", kind="net", kept=False, par="3.12.0", scans=24000, add_steps=3*1500,
        secs=(1741, 1356, 1055), thr_x=1, ap2=0.538, pd2=Diff("3.12.0", -0.003), ap4=0.546,
        ref="M:580-585; M:592, M:593"),
    dict(v="3.14.0", kind="start", kept=False, par="gray 2.11.0", scans=24000, add_steps=1500,
        secs=(1397,), thr_x=1, ap2=0.517, pd2=0.542, ref="M:516-531; M:2030"),
    dict(v="3.15.0", kind="start", kept=False, par="3.14.0", scans=24000, add_steps=1500,
        secs=(1212,), thr_x=1, ap2=0.518, pd2=0.565, ref="M:541-548"),
    dict(v="3.16.0", kind="start", kept=False, par="3.15.0", scans=24000, add_steps=1500,
        secs=(1225,), thr_x=1, ap2=0.522, pd2=0.576, ap4=0.529, pdr=0.579, pfr=0.057,
        ref="M:558-566, M:393; M:2030; M:2078"),
    dict(v="3.17.0", kind="start", kept=True, par="3.16.0", scans=24000, add_steps=1500,
        secs=(1284,), thr_x=1, ap2=0.524, pd2=0.578, ap4=0.529, pdr=0.579, pfr=0.052,
        ref="M:377-384, M:394, M:405; M:2030; M:2077"),
    dict(v="3.18.0", kind="fresh", kept=False, par="3.16.0", scans=24000, add_steps=1500,
        secs=(1475,), thr_x=1, ap2=0.526, pd2=Diff("3.17.0", -0.007), ap4=0.541, pdr=0.595,
        pfr=0.057, ref="M:212-218; M:2076"),
    dict(v="3.19.0", kind="sl", kept=True, par="3.17.0", scans=24000, add_steps=0, add_min=5,
        thr_x=1, ap2=0.528, pd2=0.628, ap4=0.534, pdr=0.605, pfr=0.048,
        ref="M:68-101 (second look, 4,000 fit scans, ~5 min); M:2029; M:2075"),
    dict(v="3.20.0", kind="sl", kept=False, par="3.17.0", scans=24000, add_steps=0, thr_x=1,
        ap2=0.531, pd2=Diff("3.17.0", +0.036), ref="M:201-209"),
]

# CT steps are batch-16 slabs (C:360); ct_se/ct_long are experiments, not releases
CT = [
    dict(v="ct_se", kind="net", kept=False, par=None, scans=200, uniq=200, steps=10*230,
        ap100=0.239, pdr=0.154, pfr=0.021,
        ref="C:907 (1.0.0's recipe: 10 ep x ~230 steps, C:360)"),
    dict(v="1.1.0", kind="net", kept=True, par=None, scans=1000, uniq=1000, steps=6*1150, wall=57,
        ap100=0.339, pdr=0.365, pfr=0.042,
        ref="C:930-943 (from scratch, configs/train/ct.yaml has no init_from)"),
    dict(v="ct_long", kind="net", kept=False, par="1.1.0", scans=1000, uniq=1000, steps=12*1150,
        wall=57+68, ap100=0.418, pdr=0.346, pfr=0.042, ref="C:861-871"),
    dict(v="1.2.0", kind="net", kept=True, par="1.1.0", scans=1800, uniq=1800, steps=6*1150+4*2070,
        wall=57+88, ap100=0.544, ap2=0.554, pd2=0.511, pdr=0.462, pfr=0.062,
        ref="C:865-872; C:841"),
    dict(v="1.3.0", kind="net", kept=True, par="1.2.0", scans=2600, uniq=2600,
        steps=6*1150+4*2070+3*3000, wall=145+75, ap100=0.560, ap2=0.581, pd2=0.446,
        ref="C:806-808, C:814; C:842"),
    dict(v="1.4.0", kind="net", kept=True, par="1.3.0", scans=3400, uniq=3400,
        steps=6*1150+4*2070+3*3000+2*3900, wall=220+58, ap100=0.549, ap2=0.594, pd2=0.533,
        ap1k=0.576, pd1k=0.536, ref="C:760-762, C:772; C:689/C:781; C:737"),
    dict(v="1.4.0+3ep (control)", kind="net", kept=False, par="1.4.0", scans=800, uniq=4200,
        steps=None, add_steps=3*1340, add_min=3*690/60, ap2=0.613, pd2=0.549, ap1k=0.591,
        pd1k=0.524, ref="C:724-728 (655-724 s/epoch); C:679, C:689; C:739"),
    dict(v="1.5.0", kind="net", kept=True, par="1.4.0+3ep (control)", scans=1600, uniq=5000,
        add_steps=2*2602, secs=(705, 693), ap2=0.634, pd2=0.685, ap1k=0.611,
        pd1k=Diff("1.4.0", +0.022), ap3=0.629, pd3=0.603,
        ref="C:662-668; C:680, C:690; C:692; C:461, C:471"),
    dict(v="1.6.0", kind="net", kept=False, par="1.5.0", scans=1600, uniq=5000, add_steps=2602,
        add_min=None, ap2=0.632, pd2=Diff("1.5.0", -0.054),
        ref="C:705-709 (1 epoch, time not stated)"),
    dict(v="1.7.0", kind="net", kept=False, par="1.5.0", scans=2400, uniq=5800, add_steps=2*3922,
        secs=(944, 939), ap2=0.667, pd2=Diff("1.5.0", -0.011), ap1k=0.634,
        pd1k=Diff("1.5.0", -0.008), ref="C:579-583; C:591; C:595, C:596"),
    dict(v="1.8.0", kind="net", kept=False, par="1.7.0", scans=2400, uniq=6600, add_steps=2*3912,
        secs=(1088, 1225), ap2=0.639, pd2=Diff("1.5.0", -0.016), ap1k=0.619,
        pd1k=Diff("1.5.0", +0.026), ref="C:606-610; C:617; C:621, C:622"),
    dict(v="1.9.0", kind="net", kept=False, par="1.8.0", scans=2400, uniq=7400, add_steps=2*3905,
        secs=(1221, 971), ap2=0.669, pd2=Diff("1.5.0", -0.033), ap1k=0.630,
        pd1k=Diff("1.5.0", +0.036), ap3=0.629, pd3=Diff("1.5.0", -0.032),
        ref="C:633-640; C:644, C:645; C:652-654"),
    dict(v="1.10.0 (wide)", kind="arch", kept=False, par="1.8.0", scans=2400, uniq=7400,
        add_steps=2*3905, secs=(1131, 1072), ap1k=0.632, pd1k=Diff("1.9.0", +0.002), ap3=0.639,
        pd3=Diff("1.5.0", -0.034), ref="C:524-546"),
    dict(v="1.11.0 (SL)", kind="sl", kept=True, par="1.5.0", scans=1600, uniq=5000, add_steps=0,
        add_min=2.6, ap2=0.719, pd2=0.804, ap1k=0.707, pd1k=Diff("1.5.0", +0.216), ap3=0.724,
        pd3=0.747,
        ref="C:431-471 (trees on 2,400 vols, 2 min 35 s on 2 cores); C:462, C:466-468,"
        " C:471, C:496-497"),
]

# Single numbers the conversions and the write-up use: (value, where it is printed).
FACTS = {
    "gpu_step_secs": ((63, 66, 56), "M:1222"),  # dual 3.6.0's three epochs of steps on the H200
    "gpu_crops": (72000, "M:1222"),
    "gpu_budget_min": (4.22, "M:1221"),
    "test2_positives": (993, "M:1983"),
    "test2_low_cnr": (105, "M:1372"),  # positive test2 scans whose best packet has CNR < 3
    "low_cnr_found": (0.34, "M:119"),  # share of those dual 3.19.0 finds at the release threshold
}

import sys; sys.argv=['x']
exec(open('/tmp/r18/hybrid.py').read().split("if __name__")[0])
def q2(la,lo, radius_km=8.0):
    tz = tzfpy.get_tz(lo,la); cc = zone_cc.get(tz)
    if cc is None: return (None,None,None,tz)
    a,b=math.radians(la),math.radians(lo); p=[math.cos(a)*math.cos(b), math.cos(a)*math.sin(b), math.sin(a)]
    d,idx = tree.query(p, k=64)
    cand=[(dd*6371,i) for dd,i in zip(d,idx) if ccs[i]==cc]
    if not cand: return (cc,None,None,tz)
    d0=cand[0][0]; lim=max(radius_km, 1.5*d0)
    best=max((c for c in cand if c[0]<=lim), key=lambda c: locs[c[1]]['population'])
    L=locs[best[1]]; return (cc, L.get('state'), L['city'], tz, round(float(best[0]),1))
exec(open('/tmp/r18/geo.py').read().split('lib = sys.argv[1]')[0])
for name,la,lo,exp,exp2 in P: print(f'{name:14}', q2(la,lo))

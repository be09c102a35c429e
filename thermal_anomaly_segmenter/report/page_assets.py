"""The inline style and script of ``report.html`` (:mod:`.html`).

The script keeps the inspector's decisions in the page's localStorage, one entry per report
(``taseg-review:<report_id>``): per listed anomaly ``frame/id`` its decision, cause and
outline, and per leak added on a whole frame ``frame/added-<n>`` with ``added: true`` and its
outline, all in frame pixel corners; ``window.tasegReview()`` writes them as ``review.json``.
"""

CSS = """
body{font:14px/1.4 system-ui,sans-serif;margin:1.5em;color:#222;background:#fafafa}
h1{font-size:1.5em;margin:0 0 .3em}h2{font-size:1.15em;margin:1.4em 0 .4em}
table{border-collapse:collapse;background:#fff}td,th{border:1px solid #ccc;padding:3px 6px;
vertical-align:top}th{background:#eee;text-align:left}td.num{text-align:right}
.sev-A{background:#f8c9c4}.sev-B{background:#fbe3b5}.sev-C{background:#e4ecf5}
.totals td{min-width:4em}.rule{font-family:monospace;font-size:.9em}
.crop img{display:block;image-rendering:pixelated}.loc{font-size:.85em;color:#444}
.review button{margin:1px;font-size:.85em}.review select{font-size:.85em}
tr[data-decision=leak] .review{background:#d5f0d5}
tr[data-decision=false_alarm] .review{background:#eee}
tr[data-decision=unsure] .review{background:#fff3c4}
.decision{font-weight:bold}.map{position:relative;display:inline-block}
.map svg{position:absolute;left:0;top:0}.muted{color:#777}
.crop-box{position:relative;display:inline-block}
.crop-box svg{position:absolute;left:0;top:0;width:100%;height:100%;pointer-events:none}
.crop-box .outline{fill:none;stroke:#ff2bd6;stroke-width:1.5}.crop-box .vertex{fill:#ff2bd6}
tr.outlining .crop-box{cursor:crosshair;box-shadow:0 0 0 2px #ff2bd6}
#frames .frame{display:inline-block;vertical-align:top;margin:0 1em 1em 0}
#frames h3{font-size:1em;margin:.2em 0}.frame-box{position:relative;display:inline-block}
.frame-box img{display:block}.frame-box svg{position:absolute;left:0;top:0;width:100%;
height:100%;pointer-events:none}.frame-box .outline{fill:none;stroke:#ff2bd6;stroke-width:1.5}
.frame-box .vertex{fill:#ff2bd6}.frame.outlining .frame-box{cursor:crosshair;
box-shadow:0 0 0 2px #ff2bd6}.frame ul.added{margin:.2em 0;padding-left:1.2em}
"""

JS = r"""
(function(){
const data=JSON.parse(document.getElementById('taseg-data').textContent);
const KEY='taseg-review:'+data.report_id;
const byKey={};data.anomalies.forEach(function(a){byKey[a.frame+'/'+a.id]=a;});
let state={};
try{state=JSON.parse(localStorage.getItem(KEY)||'{}')||{};}catch(e){state={};}
// the row (key) or whole frame (frame) being outlined: {key, frame, pts: frame pixel corners}
let drawing=null;
const views=data.frame_views||{};
function isAdded(s){return !!(s&&s.added===true);}
function addedKeys(frame){return Object.keys(state).filter(function(k){
  return isAdded(state[k])&&(frame===undefined||state[k].frame===frame);}).sort();}
function save(){try{localStorage.setItem(KEY,JSON.stringify(state));}catch(e){}}
function r2(v){return Math.round(v*100)/100;}
function outlined(d){return !!(d&&d.decision==='leak'&&Array.isArray(d.outline)&&
  d.outline.length>=3);}
function drawOutline(tr){
  const svg=tr.querySelector('.crop-box svg');if(!svg)return;
  svg.textContent='';
  const a=byKey[tr.dataset.key];const m=a&&a.crop_frame;if(!m)return;
  const d=state[tr.dataset.key];const live=drawing&&drawing.key===tr.dataset.key;
  const pts=live?drawing.pts:(outlined(d)?d.outline:[]);if(!pts.length)return;
  const crop=pts.map(function(p){return [(p[0]-m[0])/m[2],(p[1]-m[1])/m[3]];});
  const line=document.createElementNS(svg.namespaceURI,live?'polyline':'polygon');
  line.setAttribute('points',crop.map(function(c){return c[0]+','+c[1];}).join(' '));
  line.setAttribute('class','outline');svg.appendChild(line);
  if(live)crop.forEach(function(c){
    const dot=document.createElementNS(svg.namespaceURI,'circle');
    dot.setAttribute('cx',c[0]);dot.setAttribute('cy',c[1]);dot.setAttribute('r',2);
    dot.setAttribute('class','vertex');svg.appendChild(dot);
  });
}
function show(){
  document.querySelectorAll('#anomalies tr[data-key]').forEach(function(tr){
    const d=state[tr.dataset.key];
    tr.dataset.decision=d?d.decision:'';
    const live=!!drawing&&drawing.key===tr.dataset.key;
    tr.classList.toggle('outlining',live);
    const done=tr.querySelector('button[data-outline=done]');if(done)done.hidden=!live;
    tr.querySelector('.decision').textContent=d?(d.decision+(d.cause?' ('+d.cause+')':'')+
      (outlined(d)?', outlined':'')+(live?': click around the leak on the crop':'')):'';
    drawOutline(tr);
  });
  const listed=Object.keys(state).filter(function(k){return !isAdded(state[k]);});
  const kinds={leak:0,false_alarm:0,unsure:0};let lined=0;
  listed.forEach(function(k){kinds[state[k].decision]=(kinds[state[k].decision]||0)+1;
    if(outlined(state[k]))lined++;});
  const added=addedKeys().length;
  document.getElementById('review-count').textContent=listed.length+' of '+
    data.anomalies.length+' decided ('+kinds.leak+' leak, '+kinds.false_alarm+
    ' false alarm, '+kinds.unsure+' unsure), '+lined+(lined===1?' leak':' leaks')+
    ' outlined, '+added+(added===1?' missed leak':' missed leaks')+' added';
  showNext();showFrames();
}
function drawFrame(div){
  const f=div.dataset.frame;const svg=div.querySelector('.frame-box svg');const m=views[f];
  if(!svg||!m)return;
  svg.textContent='';
  function shape(tag,pts,cls){
    const e=document.createElementNS(svg.namespaceURI,tag);
    e.setAttribute('points',pts.map(function(p){return ((p[0]-m[0])/m[2])+','+
      ((p[1]-m[1])/m[3]);}).join(' '));
    e.setAttribute('class',cls);svg.appendChild(e);
  }
  addedKeys(f).forEach(function(k){shape('polygon',state[k].outline,'outline');});
  if(drawing&&drawing.frame===f){
    shape('polyline',drawing.pts,'outline');
    drawing.pts.forEach(function(p){
      const dot=document.createElementNS(svg.namespaceURI,'circle');
      dot.setAttribute('cx',(p[0]-m[0])/m[2]);dot.setAttribute('cy',(p[1]-m[1])/m[3]);
      dot.setAttribute('r',2);dot.setAttribute('class','vertex');svg.appendChild(dot);
    });
  }
}
function showFrames(){
  document.querySelectorAll('#frames .frame[data-frame]').forEach(function(div){
    const f=div.dataset.frame;const live=!!drawing&&drawing.frame===f;
    div.classList.toggle('outlining',live);
    div.querySelector('button[data-add=start]').hidden=live;
    div.querySelector('button[data-add=done]').hidden=!live;
    div.querySelector('.hint').textContent=live?
      'click around the leak on the frame, then done ('+drawing.pts.length+' points)':'';
    const list=div.querySelector('ul.added');list.textContent='';
    addedKeys(f).forEach(function(k){
      const li=document.createElement('li');const b=document.createElement('button');
      li.textContent=state[k].id+', a leak ('+state[k].outline.length+' points) ';
      b.textContent='remove';b.dataset.remove=k;
      b.addEventListener('click',function(){delete state[k];save();show();});
      li.appendChild(b);list.appendChild(li);
    });
    drawFrame(div);
  });
}
function nextAdded(){
  let n=0;
  addedKeys().forEach(function(k){n=Math.max(n,parseInt(String(state[k].id).slice(6),10)||0);});
  return 'added-'+(n+1);
}
document.querySelectorAll('#frames .frame[data-frame]').forEach(function(div){
  const f=div.dataset.frame;
  div.querySelectorAll('button[data-add]').forEach(function(b){
    b.addEventListener('click',function(){
      if(b.dataset.add==='start'){drawing={key:null,frame:f,pts:[]};}
      else if(drawing&&drawing.frame===f){
        // fewer than three points are no outline: the draft is dropped
        if(drawing.pts.length>=3){
          const id=nextAdded();
          state[f+'/'+id]={decision:'leak',cause:'leak',added:true,frame:f,id:id,
            outline:drawing.pts.map(function(p){return [r2(p[0]),r2(p[1])];})};
          save();
        }
        drawing=null;
      }
      show();
    });
  });
  const box=div.querySelector('.frame-box');if(!box)return;
  box.addEventListener('click',function(e){
    const m=views[f];if(!drawing||drawing.frame!==f||!m)return;
    const img=box.querySelector('img');const rect=img.getBoundingClientRect();
    const u=(e.clientX-rect.left)*img.naturalWidth/rect.width;
    const v=(e.clientY-rect.top)*img.naturalHeight/rect.height;
    drawing.pts.push([m[0]+u*m[2],m[1]+v*m[3]]);show();
  });
});
function showNext(){
  const list=document.querySelector('#review-next ol');if(!list)return;
  list.textContent='';
  (data.review_order||[]).filter(function(k){return !state[k];}).slice(0,10).forEach(function(k){
    const li=document.createElement('li');const b=document.createElement('button');
    b.textContent=k;b.dataset.key=k;
    b.addEventListener('click',function(){
      const tr=document.querySelector('#anomalies tr[data-key="'+CSS.escape(k)+'"]');
      if(tr){tr.scrollIntoView({block:'center'});}
    });
    li.appendChild(b);list.appendChild(li);
  });
}
document.querySelectorAll('#anomalies tr[data-key] button[data-decision]').forEach(function(b){
  b.addEventListener('click',function(){
    const tr=b.closest('tr');const dec=b.dataset.decision;const k=tr.dataset.key;
    const cause=dec==='false_alarm'?tr.querySelector('select.cause').value:
      (dec==='leak'?'leak':null);
    const entry={decision:dec,cause:cause};
    // an outline says where the leak is: kept while the row stays a leak, else dropped
    if(dec==='leak'&&outlined(state[k]))entry.outline=state[k].outline;
    if(dec!=='leak'&&drawing&&drawing.key===k)drawing=null;
    state[k]=entry;save();show();
  });
});
document.querySelectorAll('#anomalies tr[data-key] button[data-outline]').forEach(function(b){
  b.addEventListener('click',function(){
    const k=b.closest('tr').dataset.key;const act=b.dataset.outline;
    if(act==='start'){
      // outlining a leak is confirming it
      if(!state[k]||state[k].decision!=='leak')state[k]={decision:'leak',cause:'leak'};
      drawing={key:k,pts:[]};
    }else if(act==='done'){
      if(drawing&&drawing.key===k&&drawing.pts.length>=3&&state[k]&&
         state[k].decision==='leak')
        state[k].outline=drawing.pts.map(function(p){return [r2(p[0]),r2(p[1])];});
      if(drawing&&drawing.key===k)drawing=null;
    }else{
      if(state[k])delete state[k].outline;
      if(drawing&&drawing.key===k)drawing=null;
    }
    save();show();
  });
});
document.querySelectorAll('#anomalies tr[data-key] .crop-box').forEach(function(box){
  box.addEventListener('click',function(e){
    const k=box.closest('tr').dataset.key;const m=byKey[k]&&byKey[k].crop_frame;
    if(!drawing||drawing.key!==k||!m)return;
    const img=box.querySelector('img');const rect=img.getBoundingClientRect();
    const u=(e.clientX-rect.left)*img.naturalWidth/rect.width;
    const v=(e.clientY-rect.top)*img.naturalHeight/rect.height;
    drawing.pts.push([m[0]+u*m[2],m[1]+v*m[3]]);show();
  });
});
function review(){
  const decisions=[];
  Object.keys(state).sort().forEach(function(k){
    const s=state[k];
    if(isAdded(s)){  // a leak the report did not list: its outline is all there is
      if(!outlined(s)||!Object.prototype.hasOwnProperty.call(data.frames,s.frame))return;
      const ring=s.outline.map(function(p){return [r2(p[0]),r2(p[1])];});
      ring.push(ring[0].slice());
      decisions.push({frame:s.frame,id:s.id,decision:'leak',cause:'leak',added:true,
        outline:[[ring]]});
      return;
    }
    const a=byKey[k];if(!a)return;
    const d={frame:a.frame,id:a.id,decision:s.decision,cause:s.cause,
      bbox:a.bbox,polygon:a.polygon,severity:a.severity};
    if(outlined(s)){  // frame pixel corners, the ring closed
      const ring=s.outline.map(function(p){return [r2(p[0]),r2(p[1])];});
      ring.push(ring[0].slice());d.outline=[[ring]];
    }
    decisions.push(d);
  });
  return {schema:data.review_schema,report_id:data.report_id,created:new Date().toISOString(),
    frames:data.frames,decisions:decisions};
}
window.tasegReview=review;
document.getElementById('export').addEventListener('click',function(){
  const blob=new Blob([JSON.stringify(review(),null,1)],{type:'application/json'});
  const a=document.createElement('a');a.href=URL.createObjectURL(blob);a.download='review.json';
  document.body.appendChild(a);a.click();a.remove();
});
document.getElementById('clear').addEventListener('click',function(){
  state={};drawing=null;save();show();});
function order(key){
  const body=document.querySelector('#anomalies tbody');
  const rows=Array.from(body.querySelectorAll('tr[data-key]'));
  rows.sort(function(a,b){return key==='loss'?
    (parseFloat(b.dataset.loss||'-Infinity')-parseFloat(a.dataset.loss||'-Infinity'))||
    (a.dataset.rank-b.dataset.rank):a.dataset.rank-b.dataset.rank;});
  rows.forEach(function(r){body.appendChild(r);});
}
document.getElementById('sort-loss').addEventListener('click',function(){order('loss');});
document.getElementById('sort-rank').addEventListener('click',function(){order('rank');});
show();
})();
"""

import { pollFigure } from '../relay-http.js';
const r = await pollFigure("v2", 2, 50);
console.log(Math.round(r.route.reqPerSec), Math.round(r.floor.reqPerSec), (r.route.reqPerSec / r.floor.reqPerSec).toFixed(2));
